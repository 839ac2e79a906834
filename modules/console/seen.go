package console

import (
	"fmt"
	"time"

	"github.com/atlasgate/atlasgate/modules/atlasgate"
)

// when formats a time for the pages and the CLI; "—" when unknown.
func when(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04 MST")
}

// seen says in a few words what Atlassian last answered through a
// credential: what an operator would otherwise look for in the logs.
func seen(u atlasgate.UpstreamSeen) string {
	switch u.Verdict {
	case "":
		return "not used yet"
	case atlasgate.UpstreamWorking:
		return fmt.Sprintf("working (%d at %s)", u.LastStatus, when(u.LastAt))
	case atlasgate.UpstreamRejected:
		return "rejected with 401 since " + when(u.Since)
	case atlasgate.UpstreamRateLimited:
		return fmt.Sprintf("rate-limited (%d) since %s", u.LastStatus, when(u.Since))
	default:
		if u.LastStatus == 0 {
			return "no answer since " + when(u.Since)
		}
		return fmt.Sprintf("failing (%d) since %s", u.LastStatus, when(u.Since))
	}
}

// plural writes "1 request", "2 requests".
func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
