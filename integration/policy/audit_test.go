package policy

import (
	"bufio"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/atlasgate/atlasgate/integration/itest"
)

// Audit events can be routed to their own sink by logger name, as operators
// do with `log audit { include atlasgate.audit }`.
func TestAuditEventsReachTheirOwnLog(t *testing.T) {
	g := start(t)
	resp, _ := g.raw(t, "GET", "/rest/api/3/myself", map[string]string{"X-Test-User": "nobody-matches-this"})
	if resp.StatusCode != 403 {
		t.Fatalf("status %d, want a denial", resp.StatusCode)
	}
	var ev map[string]any
	if !itest.Eventually(5*time.Second, func() bool { ev = findAudit(t, "nobody-matches-this"); return ev != nil }) {
		t.Fatal("no audit event in the audit log")
	}
	if ev["logger"] != "atlasgate.audit" || ev["decision"] != "deny" || ev["status"] == nil {
		t.Errorf("audit event = %v", ev)
	}
}

func findAudit(t *testing.T, user string) map[string]any {
	f, err := os.Open(auditFile())
	if err != nil {
		return nil
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var ev map[string]any
		if json.Unmarshal(sc.Bytes(), &ev) == nil && ev["user"] == user {
			return ev
		}
	}
	return nil
}
