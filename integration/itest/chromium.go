package itest

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// Chromium is the browser the browser tests drive: Debian's chromium
// package, which .ci/run installs (apt-get install --no-install-recommends
// chromium). $ATLASGATE_CHROMIUM overrides the path.
const Chromium = "/usr/bin/chromium"

// NeedChromium returns the Chromium to drive, or stops the test: under CI
// (CI=true, as CI services set it) a missing browser fails the test, since
// CI must run every test; elsewhere the test is skipped with a message that
// says what to install. go test hides a passing package's skip messages
// without -v, so `make test` also warns at the end of the run when Chromium
// is missing.
func NeedChromium(t testing.TB) string {
	t.Helper()
	path := Chromium
	if p := os.Getenv("ATLASGATE_CHROMIUM"); p != "" {
		path = p
	}
	if _, err := exec.LookPath(path); err == nil {
		return path
	}
	msg := fmt.Sprintf("%s not found: this browser test needs Debian's chromium "+
		"(apt-get install -y --no-install-recommends chromium, or set ATLASGATE_CHROMIUM)", path)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + "; CI must install it (.ci/run does)")
	}
	t.Skip("SKIPPED: " + msg)
	return ""
}
