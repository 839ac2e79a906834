package authhandler

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/atlasgate/atlasgate/modules/internal/cli"
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

--json
    Print the admin API's JSON answer instead of the verdict and its details.

The first line is the verdict (which authenticator accepts the token, and as
whom); then one line per authenticator and the accepted identity's claims.

Exit status: 0 when some authenticator accepts the token, 1 otherwise.
`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.Flags().String("authenticator", "", "Test with this authenticator only")
			cmd.Flags().String("address", "", "The admin API address")
			cmd.Flags().String("token", "", "The token (default: standard input)")
			cmd.Flags().Bool("json", false, "Print the admin API's JSON answer")
			cli.Setup(cmd, "authentication.md", cmdTestToken)
		},
	})
}

func cmdTestToken(cmd *cobra.Command, _ []string) (int, error) {
	f := cmd.Flags()
	token, _ := f.GetString("token")
	if token == "" {
		var err error
		if token, err = readSecret("Token: "); err != nil {
			return 1, err
		}
	}
	address, _ := f.GetString("address")
	name, _ := f.GetString("authenticator")
	body, err := cli.Admin(address, http.MethodPost, "/atlasgate/test-token", TestTokenRequest{Token: token, Authenticator: name})
	if err != nil {
		return 1, err
	}
	var results []TestTokenResult
	if err := json.Unmarshal(body, &results); err != nil {
		return 1, fmt.Errorf("decoding the admin API's answer: %v", err)
	}
	if len(results) == 0 {
		return 1, fmt.Errorf("no authenticators configured: add `authenticator <name> <type>` to the global atlasgate block (docs/authentication.md)")
	}
	if asJSON, _ := f.GetBool("json"); asJSON {
		if err := cli.PrintJSON(results); err != nil {
			return 1, err
		}
	} else {
		printResults(os.Stdout, results)
	}
	for _, r := range results {
		if r.Valid {
			return 0, nil
		}
	}
	return 1, fmt.Errorf("no authenticator accepted the token")
}

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
