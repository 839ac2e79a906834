package apikey

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
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
		Name:  "atlasgate-api-key",
		Usage: "create|list|revoke|rotate --authenticator <name> [flags]",
		Short: "Manages the API keys of a running atlasgate gateway",
		Long: `
Creates, lists, revokes and rotates the API keys of an api_key authenticator
of a running gateway, through its admin API (the /atlasgate/api-keys/ routes).
Keys are kept in the gateway's storage, so every replica sharing that storage
accepts a new key and refuses a revoked one within a second.

  caddy atlasgate-api-key create --authenticator <name> --owner <owner>
        [--description <text>] [--label <k=v>]... [--group <group>]...
        [--expires-in <duration>] [--address <admin>] [--json]
  caddy atlasgate-api-key list   --authenticator <name> [--address <admin>] [--json]
  caddy atlasgate-api-key revoke --authenticator <name> [--address <admin>] [--json] <id>
  caddy atlasgate-api-key rotate --authenticator <name> [--expires-in <duration>]
        [--grace-period <duration>] [--address <admin>] [--json] <id>

create and rotate print the new key alone on stdout, and what is known about
it on stderr. The key is shown only this once: the gateway keeps only its hash.

--address
    The admin API address of the running gateway. Default: the CADDY_ADMIN
    environment variable, or localhost:2019.

--authenticator
    The name of the api_key authenticator (as in 'authenticator <name> api_key'
    in the atlasgate global option). Required.

--owner
    create: who the key authenticates as; becomes {http.auth.user.id}. Required.

--description
    create: free text for people, e.g. what the key is for.

--label
    create: a key=value label of the key, repeatable. Labels become the
    identity's labels that policy can match on.

--group
    create: a group of the key, repeatable.

--expires-in
    create, rotate: the key's lifetime, e.g. 720h or 30d. Default: the
    authenticator's default_lifetime (90d unless configured); at most its
    max_lifetime (365d unless configured). Keys without an expiry are not
    issued.

--grace-period
    rotate: keep the old key working this long (never past its own expiry),
    e.g. 10m. Default: the old key is revoked at once.

--json
    Print the admin API's JSON answer instead (create and rotate: including
    the key).
`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.PersistentFlags().String("address", "", "The admin API address (default: $CADDY_ADMIN or localhost:2019)")
			cmd.PersistentFlags().String("authenticator", "", "The name of the api_key authenticator (required)")
			cmd.PersistentFlags().Bool("json", false, "Print the admin API's JSON answer")
			cli.Setup(cmd, "authentication.md", nil)

			create := &cobra.Command{
				Use:   "create --authenticator <name> --owner <owner> [--description <text>] [--label <k=v>]... [--group <group>]... [--expires-in <duration>]",
				Short: "Issues a new API key and prints it once",
				Args:  cobra.NoArgs,
				RunE:  cli.Wrap(status(cmdCreate)),
			}
			create.Flags().String("owner", "", "Who the key authenticates as (required)")
			create.Flags().String("description", "", "What the key is for")
			create.Flags().StringArray("label", nil, "A key=value label (repeatable)")
			create.Flags().StringArray("group", nil, "A group (repeatable)")
			create.Flags().String("expires-in", "", "Lifetime, e.g. 30d (default: the authenticator's default_lifetime)")
			cmd.AddCommand(create)

			cmd.AddCommand(&cobra.Command{
				Use:   "list --authenticator <name>",
				Short: "Lists the API keys (never the keys themselves)",
				Args:  cobra.NoArgs,
				RunE:  cli.Wrap(status(cmdList)),
			})

			cmd.AddCommand(&cobra.Command{
				Use:   "revoke --authenticator <name> <id>",
				Short: "Revokes an API key",
				Args:  cobra.ExactArgs(1),
				RunE:  cli.Wrap(status(cmdRevoke)),
			})

			rotate := &cobra.Command{
				Use:   "rotate --authenticator <name> [--expires-in <duration>] [--grace-period <duration>] <id>",
				Short: "Issues a replacement for an API key and revokes the old one",
				Args:  cobra.ExactArgs(1),
				RunE:  cli.Wrap(status(cmdRotate)),
			}
			rotate.Flags().String("expires-in", "", "Lifetime of the new key (default: the authenticator's default_lifetime)")
			rotate.Flags().String("grace-period", "", "How long the old key keeps working (default: revoked at once)")
			cmd.AddCommand(rotate)
		},
	})
}

func cmdCreate(cmd *cobra.Command, _ []string) error {
	req := CreateRequest{
		Owner:       flag(cmd, "owner"),
		Description: flag(cmd, "description"),
		ExpiresIn:   flag(cmd, "expires-in"),
	}
	if req.Owner == "" {
		return fmt.Errorf("--owner is required")
	}
	labels, _ := cmd.Flags().GetStringArray("label")
	for _, l := range labels {
		k, v, ok := strings.Cut(l, "=")
		if !ok || k == "" {
			return fmt.Errorf("--label %q: use key=value", l)
		}
		if req.Labels == nil {
			req.Labels = make(map[string]string)
		}
		req.Labels[k] = v
	}
	req.Groups, _ = cmd.Flags().GetStringArray("group")
	return issue(cmd, http.MethodPost, "", req)
}

func cmdRotate(cmd *cobra.Command, args []string) error {
	req := RotateRequest{ExpiresIn: flag(cmd, "expires-in"), GracePeriod: flag(cmd, "grace-period")}
	return issue(cmd, http.MethodPost, "/"+url.PathEscape(args[0])+"/rotate", req)
}

// issue sends a create or rotate request and prints the new key.
func issue(cmd *cobra.Command, method, path string, req any) error {
	body, err := adminRequest(cmd, method, path, req)
	if err != nil {
		return err
	}
	if jsonOutput(cmd) {
		return cli.PrintJSON(body)
	}
	var out Issued
	if err := json.Unmarshal(body, &out); err != nil {
		return fmt.Errorf("decoding the admin API's answer: %w", err)
	}
	fmt.Fprintf(os.Stderr, "API key %s for %s, expires %s. It is shown only now; store it safely:\n",
		out.ID, out.Owner, out.Expires.Format(time.RFC3339))
	fmt.Fprintln(os.Stdout, out.Key)
	return nil
}

func cmdList(cmd *cobra.Command, _ []string) error {
	body, err := adminRequest(cmd, http.MethodGet, "", nil)
	if err != nil {
		return err
	}
	if jsonOutput(cmd) {
		return cli.PrintJSON(body)
	}
	var keys []KeyInfo
	if err := json.Unmarshal(body, &keys); err != nil {
		return fmt.Errorf("decoding the admin API's answer: %w", err)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tOWNER\tSTATUS\tEXPIRES\tLAST USED\tDESCRIPTION")
	for _, k := range keys {
		last := "-"
		if !k.LastUsed.IsZero() {
			last = k.LastUsed.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Owner, k.Status, k.Expires.Format(time.RFC3339), last, k.Description)
	}
	return tw.Flush()
}

func cmdRevoke(cmd *cobra.Command, args []string) error {
	body, err := adminRequest(cmd, http.MethodDelete, "/"+url.PathEscape(args[0]), nil)
	if err != nil {
		return err
	}
	if jsonOutput(cmd) {
		return cli.PrintJSON(body)
	}
	fmt.Fprintf(os.Stdout, "API key %s revoked\n", args[0])
	return nil
}

// adminRequest calls /atlasgate/api-keys/<authenticator><path> on the admin
// API and returns the answer's body.
func adminRequest(cmd *cobra.Command, method, path string, req any) ([]byte, error) {
	name := flag(cmd, "authenticator")
	if name == "" {
		return nil, fmt.Errorf("--authenticator is required")
	}
	return cli.Admin(flag(cmd, "address"), method, adminAPIBase+url.PathEscape(name)+path, req)
}

// status adapts a subcommand to cli.Wrap: any error is exit status 1.
func status(f func(*cobra.Command, []string) error) func(*cobra.Command, []string) (int, error) {
	return func(cmd *cobra.Command, args []string) (int, error) {
		if err := f(cmd, args); err != nil {
			return 1, err
		}
		return 0, nil
	}
}

func flag(cmd *cobra.Command, name string) string {
	v, _ := cmd.Flags().GetString(name)
	return strings.TrimSpace(v)
}

func jsonOutput(cmd *cobra.Command) bool {
	v, _ := cmd.Flags().GetBool("json")
	return v
}
