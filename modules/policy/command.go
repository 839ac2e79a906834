package policy

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/atlasgate/atlasgate/modules/authn"
	"github.com/atlasgate/atlasgate/modules/internal/cli"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "atlasgate-explain",
		Usage: "[--user <id>] [--group <g>...] [--identity <file>] [--token-stdin] [--host <host>] [--header 'K: V'...] <method> <path>",
		Short: "Explains how the running gateway's access policy decides a request",
		Long: `
Asks the running gateway's admin API (POST /atlasgate/explain) how its access
policy decides a request: the canonical path the rules see, the rule that
decides and why each rule before it does not match, the credential that would
be injected and the rate limits that apply. The gateway answers with the very
code that decides live requests.

The caller is given as an identity (--user and friends, or --identity with a
JSON file in the shape of the admin API's "identity"), or as a token read from
standard input (--token-stdin) that the gateway's authenticators check.

<method> <path> is the request line, the path as sent on the wire (escaped,
optionally with a query).

--user, --subject, --authenticator-name, --group, --scope, --label k=v
    The identity. --group, --scope and --label may repeat.

--identity
    A JSON file holding the identity; overrides the flags above.

--token-stdin
    Read a bearer token or API key from standard input and authenticate it.

--authenticator
    With --token-stdin: the authenticator to check it with. Default: every one.

--host, --header 'Name: value', --remote-addr
    The Host header, request headers (repeatable) and peer address.

--policy
    Ask only the policy with this name. Default: every policy.

--address
    The admin API address. Default: the CADDY_ADMIN environment variable,
    else localhost:2019.

--json
    Print the admin API's JSON answer instead of the verdict and its details.

The first line is the verdict of each policy (ALLOW, DENY or REFUSE, the rule
and the credential); then the canonical path, the caller and every rule in
order with why it does not match.

Exit status: 0 when every policy asked allows the request, 1 otherwise.
`,
		CobraFunc: func(cmd *cobra.Command) {
			f := cmd.Flags()
			f.String("user", "", "Identity user")
			f.String("subject", "", "Identity subject")
			f.String("authenticator-name", "", "Name of the authenticator that accepted the identity")
			f.StringArray("group", nil, "Identity group (repeatable)")
			f.StringArray("scope", nil, "Identity scope (repeatable)")
			f.StringArray("label", nil, "Identity label key=value (repeatable)")
			f.String("identity", "", "JSON file holding the identity")
			f.Bool("token-stdin", false, "Read a token from standard input")
			f.String("authenticator", "", "Authenticator that checks the token")
			f.String("host", "", "Host header")
			f.StringArray("header", nil, "Request header 'Name: value' (repeatable)")
			f.String("remote-addr", "", "Peer address")
			f.String("policy", "", "Policy name")
			f.String("address", "", "The admin API address")
			f.Bool("json", false, "Print the admin API's JSON answer")
			cmd.Args = cobra.ExactArgs(2)
			cli.Setup(cmd, "policy.md", cmdExplain)
		},
	})
}

func cmdExplain(cmd *cobra.Command, args []string) (int, error) {
	f := cmd.Flags()
	str := func(n string) string { v, _ := f.GetString(n); return v }
	arr := func(n string) []string { v, _ := f.GetStringArray(n); return v }
	req := ExplainRequest{Method: args[0], Path: args[1], Host: str("host"), Policy: str("policy"),
		RemoteAddr: str("remote-addr"), Authenticator: str("authenticator"), Headers: map[string]string{}}
	for _, h := range arr("header") {
		k, v, ok := strings.Cut(h, ":")
		if !ok {
			return 1, fmt.Errorf("--header %q: use 'Name: value'", h)
		}
		req.Headers[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	if tokenStdin, _ := f.GetBool("token-stdin"); tokenStdin {
		b, err := io.ReadAll(io.LimitReader(os.Stdin, 1<<20))
		if err != nil {
			return 1, err
		}
		if req.Token = strings.TrimSpace(string(b)); req.Token == "" {
			return 1, fmt.Errorf("no token on standard input")
		}
	} else if file := str("identity"); file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return 1, err
		}
		if err := json.Unmarshal(b, &req.Identity); err != nil {
			return 1, fmt.Errorf("--identity %s: %v", file, err)
		}
	} else if str("user") != "" || str("subject") != "" || str("authenticator-name") != "" ||
		len(arr("group")) > 0 || len(arr("scope")) > 0 || len(arr("label")) > 0 {
		id := &authn.Identity{User: str("user"), Subject: str("subject"), Authenticator: str("authenticator-name"),
			Groups: arr("group"), Scopes: arr("scope")}
		for _, l := range arr("label") {
			k, v, ok := strings.Cut(l, "=")
			if !ok {
				return 1, fmt.Errorf("--label %q: use key=value", l)
			}
			if id.Labels == nil {
				id.Labels = map[string]string{}
			}
			id.Labels[k] = v
		}
		req.Identity = id
	}
	body, err := cli.Admin(str("address"), http.MethodPost, "/atlasgate/explain", req)
	if err != nil {
		return 1, err
	}
	var out []Explanation
	if err := json.Unmarshal(body, &out); err != nil {
		return 1, fmt.Errorf("decoding the admin API's answer: %v", err)
	}
	if asJSON, _ := f.GetBool("json"); asJSON {
		if err := cli.PrintJSON(out); err != nil {
			return 1, err
		}
	} else {
		printExplanations(os.Stdout, out)
	}
	for _, e := range out {
		if e.Status != http.StatusOK {
			return 1, nil
		}
	}
	return 0, nil
}
