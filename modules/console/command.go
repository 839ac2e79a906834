package console

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/atlasgate/atlasgate/modules/internal/cli"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "atlasgate-credentials",
		Usage: "[--address <admin-address>] [--json]",
		Short: "Lists the running gateway's credentials and their states",
		Long: `
Asks the running gateway's admin API (GET /atlasgate/credentials) for every
configured Atlassian credential and prints a table: name, type, state,
access-token expiry (OAuth), what Atlassian last answered through it
(working, rejected with 401 since ..., rate-limited, failing), its requests
and errors in the last hour, the rate-limit headroom Atlassian last reported
(X-RateLimit-Remaining, X-RateLimit-NearLimit), and warnings. OAuth
credentials are in one of the states unauthorized, ready,
needs_reauthorization or unreadable (with the reason); per-user OAuth
credentials show how many callers have authorized; the others (api_token,
bearer, ...) have no state of their own and show "-".
A credential that is unauthorized or needs reauthorization is fixed in the
OAuth console (atlasgate_console): open it and press Authorize.

No token is ever printed: the admin API does not return any.

--address
    The admin API address. Default: the CADDY_ADMIN environment variable,
    else localhost:2019.

--json
    Print the admin API's JSON instead of a table.

Exit status: 0 when the list was printed, whatever the states; 1 when the
admin API could not be asked.
`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.Flags().String("address", "", "The admin API address")
			cmd.Flags().Bool("json", false, "Print JSON instead of a table")
			cli.Setup(cmd, "console.md", cmdCredentials)
		},
	})
}

func cmdCredentials(cmd *cobra.Command, _ []string) (int, error) {
	address, _ := cmd.Flags().GetString("address")
	body, err := cli.Admin(address, http.MethodGet, "/atlasgate/credentials", nil)
	if err != nil {
		return 1, err
	}
	var list []CredentialStatus
	if err := json.Unmarshal(body, &list); err != nil {
		return 1, fmt.Errorf("decoding the admin API's answer: %v", err)
	}
	if asJSON, _ := cmd.Flags().GetBool("json"); asJSON {
		return 0, cli.PrintJSON(list)
	}
	printTable(os.Stdout, list)
	return 0, nil
}

// printTable writes the credentials as an aligned table.
func printTable(w io.Writer, list []CredentialStatus) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tTYPE\tSTATE\tEXPIRY\tATLASSIAN\tLAST HOUR\tRATE LIMIT\tWARNINGS")
	for _, c := range list {
		state, expiry, warnings := "-", "-", ""
		if o := c.OAuth; o != nil {
			state = o.State
			if o.PerUser {
				// A state per caller; the admin API asks as nobody.
				state = fmt.Sprintf("per user: %d authorized", o.Users)
			}
			if o.Reason != "" {
				state += " (" + o.Reason + ")"
			}
			if !o.AccessExpiry.IsZero() {
				expiry = o.AccessExpiry.UTC().Format(time.RFC3339)
			}
			warnings = strings.Join(o.Warnings, "; ")
		}
		u := c.Upstream
		hour := fmt.Sprintf("%d req, %d err", u.RequestsLastHour, u.ErrorsLastHour)
		limit := "-"
		if u.RateLimitRemaining != nil {
			limit = fmt.Sprintf("%d left", *u.RateLimitRemaining)
		}
		if u.RateLimitNearLimit {
			limit += " (near limit)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.Name, c.Type, state, expiry, seen(u), hour, limit, warnings)
	}
	_ = tw.Flush()
}
