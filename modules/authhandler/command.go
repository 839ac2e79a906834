package authhandler

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "atlasgate-test-token",
		Usage: "[--authenticator <name>] [--address <admin-address>] [--token <token>]",
		Short: "Shows what the running gateway concludes about a token",
		Long: `
Sends a token to the running gateway's admin API (POST /atlasgate/test-token)
and prints, for each authenticator, whether the token is valid and why not,
and the identity it maps to: user, groups, scopes and every claim or userinfo
attribute — the facts needed to choose a username attribute.

The token is read from standard input (without echo on a terminal) unless
--token is given; prefer standard input, which keeps it out of shell history
and process listings.

--authenticator
    Test with this authenticator only. Default: every configured one.

--address
    The admin API address. Default: the CADDY_ADMIN environment variable,
    else localhost:2019.

--token
    The token. Default: read from standard input.

Exit status: 0 when some authenticator accepts the token, 1 otherwise.
`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.Flags().String("authenticator", "", "Test with this authenticator only")
			cmd.Flags().String("address", "", "The admin API address")
			cmd.Flags().String("token", "", "The token (default: standard input)")
			cmd.RunE = caddycmd.WrapCommandFuncForCobra(cmdTestToken)
		},
	})
}

func cmdTestToken(fs caddycmd.Flags) (int, error) {
	token := fs.String("token")
	if token == "" {
		var err error
		if token, err = readSecret("Token: "); err != nil {
			return caddy1(err)
		}
	}
	addr, err := caddycmd.DetermineAdminAPIAddress(fs.String("address"), nil, "", "")
	if err != nil {
		return caddy1(err)
	}
	body, _ := json.Marshal(TestTokenRequest{Token: token, Authenticator: fs.String("authenticator")})
	resp, err := caddycmd.AdminAPIRequest(addr, http.MethodPost, "/atlasgate/test-token",
		http.Header{"Content-Type": {"application/json"}}, bytes.NewReader(body))
	if err != nil {
		return caddy1(err)
	}
	defer resp.Body.Close()
	var results []TestTokenResult
	if err := json.NewDecoder(resp.Body).Decode(&results); err != nil {
		return caddy1(fmt.Errorf("decoding the admin API's answer: %v", err))
	}
	out, _ := json.MarshalIndent(results, "", "  ")
	fmt.Println(string(out))
	for _, r := range results {
		if r.Valid {
			return 0, nil
		}
	}
	// Caddy's command wrapper exits 0 for status 1 without an error.
	return 1, fmt.Errorf("no authenticator accepted the token")
}

func caddy1(err error) (int, error) { return caddy.ExitCodeFailedStartup, err }

// readSecret reads one line from standard input, without echo on a terminal.
func readSecret(prompt string) (string, error) {
	fd := int(os.Stdin.Fd())
	if term.IsTerminal(fd) {
		fmt.Fprint(os.Stderr, prompt)
		b, err := term.ReadPassword(fd)
		fmt.Fprintln(os.Stderr)
		return strings.TrimSpace(string(b)), err
	}
	line, err := bufio.NewReader(io.LimitReader(os.Stdin, 1<<20)).ReadString('\n')
	if err != nil && err != io.EOF {
		return "", err
	}
	if s := strings.TrimSpace(line); s != "" {
		return s, nil
	}
	return "", fmt.Errorf("no token given on standard input")
}
