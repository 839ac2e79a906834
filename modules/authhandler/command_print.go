package authhandler

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// printResults writes the verdict first (who the token is, for the first
// authenticator that accepts it, as live requests decide), then one line per
// authenticator, then the accepted identity's claims: the facts an operator
// needs to choose a username attribute.
func printResults(w io.Writer, results []TestTokenResult) {
	var accepted *TestTokenResult
	for i := range results {
		if results[i].Valid {
			accepted = &results[i]
			break
		}
	}
	if accepted != nil {
		id := accepted.Identity
		line := fmt.Sprintf("ACCEPTED by %s as user %q", accepted.Authenticator, id.User)
		if len(id.Groups) > 0 {
			line += ", groups " + strings.Join(id.Groups, " ")
		}
		if len(id.Scopes) > 0 {
			line += ", scopes " + strings.Join(id.Scopes, " ")
		}
		if !id.ExpiresAt.IsZero() {
			line += ", expires " + id.ExpiresAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintln(w, line)
	} else {
		fmt.Fprintln(w, "REJECTED by every authenticator")
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  AUTHENTICATOR\tRESULT\tWHY")
	for _, r := range results {
		result, why := "valid", "user "+userOf(r)
		if r.Error == "not_applicable" {
			result, why = "not applicable", r.Description
		} else if !r.Valid {
			result = fmt.Sprintf("%d %s", r.Status, r.Error)
			why = r.Description
			if r.Detail != "" {
				why += " (" + r.Detail + ")"
			}
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", r.Authenticator, result, why)
	}
	_ = tw.Flush()
	if accepted != nil && (len(accepted.Identity.Claims) > 0 || len(accepted.Identity.Labels) > 0) {
		facts := accepted.Identity.Claims
		label := "claims"
		if len(facts) == 0 {
			facts = map[string]any{}
			for k, v := range accepted.Identity.Labels {
				facts[k] = v
			}
			label = "labels"
		}
		out, _ := json.MarshalIndent(facts, "  ", "  ")
		fmt.Fprintf(w, "  %s: %s\n", label, out)
	}
}

func userOf(r TestTokenResult) string {
	if r.Identity == nil {
		return ""
	}
	return r.Identity.User
}
