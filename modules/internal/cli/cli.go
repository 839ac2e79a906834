// Package cli is what the atlasgate-* commands share, so that they read and
// fail alike: an error is one plain "Error: …" line on stderr with a non-zero
// exit status (Caddy's own wrapper would log it as a JSON line, with the admin
// API's JSON escaped inside), --json output is indented, the admin API's
// errors are reduced to their message, and --help points at atlasgate's docs.
package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
)

// DocsBase is where the --help pages send readers for the full documentation.
const DocsBase = "https://github.com/atlasgate/atlasgate/blob/main/docs/"

// Setup makes cmd (and its subcommands) run body, report its error as one
// "Error: …" line and exit with body's status, and end its --help with a
// pointer to doc (a file under docs/) instead of Caddy's documentation.
func Setup(cmd *cobra.Command, doc string, body func(cmd *cobra.Command, args []string) (int, error)) {
	cmd.SetHelpTemplate(cmd.HelpTemplate() + "\nFull documentation: " + DocsBase + doc +
		" (docs/" + doc + " in the atlasgate source)\n")
	// Cobra's own errors (unknown flag, wrong argument count) keep its
	// "Error: …" line; the usage dump after it is noise.
	cmd.SilenceUsage = true
	if body != nil {
		cmd.RunE = Wrap(body)
	}
}

// Wrap turns a command body into a cobra RunE that prints the error as one
// line on stderr and exits with the body's status (1 when it gave none).
func Wrap(body func(cmd *cobra.Command, args []string) (int, error)) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		code, err := body(cmd, args)
		if err != nil {
			fmt.Fprintln(os.Stderr, "Error: "+err.Error())
			if code == 0 {
				code = 1
			}
		}
		if code != 0 {
			os.Exit(code)
		}
		return nil
	}
}

// caddyAPIError matches the error caddycmd.AdminAPIRequest makes of an
// answer with status >= 400.
var caddyAPIError = regexp.MustCompile(`(?s)^caddy responded with error: HTTP (\d+): (.*)$`)

// Admin sends a request to the running gateway's admin API (address, else
// CADDY_ADMIN, else localhost:2019) and returns the answer's body. body, when
// not nil, is sent as JSON.
func Admin(address, method, path string, body any) ([]byte, error) {
	addr, err := caddycmd.DetermineAdminAPIAddress(address, nil, "", "")
	if err != nil {
		return nil, err
	}
	var rd io.Reader
	hdr := http.Header{}
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
		hdr.Set("Content-Type", "application/json")
	}
	resp, err := caddycmd.AdminAPIRequest(addr, method, path, hdr, rd)
	if err != nil {
		return nil, adminError(addr, err)
	}
	defer resp.Body.Close()
	return io.ReadAll(io.LimitReader(resp.Body, 16<<20))
}

// adminError rewrites the admin client's errors into something an operator
// can act on.
func adminError(addr string, err error) error {
	msg := err.Error()
	if m := caddyAPIError.FindStringSubmatch(msg); m != nil {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal([]byte(m[2]), &e) == nil && e.Error != "" {
			return errors.New(e.Error)
		}
		return fmt.Errorf("the admin API answered HTTP %s: %s", m[1], strings.TrimSpace(m[2]))
	}
	if strings.Contains(msg, "connection refused") || strings.Contains(msg, "no such host") || strings.Contains(msg, "no such file") {
		return fmt.Errorf("cannot reach the gateway's admin API at %s: is the gateway running? (set --address or CADDY_ADMIN to its admin address)", addr)
	}
	return err
}

// PrintJSON writes v to stdout indented: every --json output looks the same.
func PrintJSON(v any) error {
	if raw, ok := v.([]byte); ok {
		var b bytes.Buffer
		if err := json.Indent(&b, bytes.TrimSpace(raw), "", "  "); err != nil {
			return fmt.Errorf("decoding the admin API's answer: %v", err)
		}
		b.WriteByte('\n')
		_, err := os.Stdout.Write(b.Bytes())
		return err
	}
	out, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Println(string(out))
	return err
}
