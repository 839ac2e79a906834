package console

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/chromedp"

	"github.com/atlasgate/atlasgate/integration/atlassim"
	"github.com/atlasgate/atlasgate/integration/itest"
)

// browser starts a headless Chromium with a fresh profile that answers the
// console's basic-auth challenge (and only the gateway's) with the console
// login.
//
// TLS: the simulator's hosts serve a certificate from a CA generated at
// start. Rather than --ignore-certificate-errors, which would accept any
// certificate from anyone, the browser gets
// --ignore-certificate-errors-spki-list with the SHA-256 of the public keys
// of that CA and of its leaf: certificate errors are ignored only for chains
// holding those keys, which only this simulator has. Chromium honours the
// flag only with a --user-data-dir, which we give anyway.
func browser(t *testing.T) context.Context {
	t.Helper()
	chromium := itest.NeedChromium(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("ignore-certificate-errors-spki-list", strings.Join(simSPKIHashes(t), ",")),
		chromedp.UserDataDir(t.TempDir()),
	}
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	ctx, cancel = context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(cancel)

	// Fetch pauses the gateway's requests only, so that its 401 challenge
	// can be answered; the simulator's are left alone.
	paused := chromedp.Events(ctx, fetch.RequestPaused)
	auth := chromedp.Events(ctx, fetch.AuthRequired)
	handle := true
	if _, err := chromedp.Call(ctx, fetch.Enable, fetch.EnableParams{
		Patterns:           []*fetch.RequestPattern{{URLPattern: gw.base() + "/*"}},
		HandleAuthRequests: &handle,
	}); err != nil {
		t.Fatalf("starting %s: %v", chromium, err)
	}
	go func() {
		for ev, err := range paused {
			if err != nil {
				return
			}
			_, _ = chromedp.Call(ctx, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: ev.RequestID})
		}
	}()
	go func() {
		for ev, err := range auth {
			if err != nil {
				return
			}
			resp := &fetch.AuthChallengeResponse{Response: fetch.AuthChallengeResponseResponseCancelAuth}
			if ev.AuthChallenge.Origin == gw.base() {
				resp = &fetch.AuthChallengeResponse{Response: fetch.AuthChallengeResponseResponseProvideCredentials, Username: consoleUser, Password: consolePassword}
			}
			_, _ = chromedp.Call(ctx, fetch.ContinueWithAuth, fetch.ContinueWithAuthParams{RequestID: ev.RequestID, AuthChallengeResponse: resp})
		}
	}()
	return ctx
}

// simSPKIHashes returns base64(SHA-256(SubjectPublicKeyInfo)) of the
// simulator's CA and of the leaf its auth host serves.
func simSPKIHashes(t *testing.T) []string {
	t.Helper()
	var certs []*x509.Certificate
	if block, _ := pem.Decode(sim.CACertPEM()); block != nil {
		if c, err := x509.ParseCertificate(block.Bytes); err == nil {
			certs = append(certs, c)
		}
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(sim.CACertPEM())
	conn, err := tls.Dial("tcp", strings.TrimPrefix(sim.URL(atlassim.HostAuth), "https://"), &tls.Config{RootCAs: pool})
	if err != nil {
		t.Fatal(err)
	}
	certs = append(certs, conn.ConnectionState().PeerCertificates[0])
	conn.Close()
	var out []string
	for _, c := range certs {
		sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
		out = append(out, base64.StdEncoding.EncodeToString(sum[:]))
	}
	return out
}

// pressAuthorize opens the console, presses Authorize for jira, and lands on
// the simulator's consent page.
func pressAuthorize(t *testing.T, ctx context.Context) {
	t.Helper()
	err := chromedp.Do(ctx,
		chromedp.Navigate(gw.base()+prefix+"/"),
		chromedp.WaitVisible(chromedp.CSS("#authorize-jira")),
		chromedp.Click(chromedp.CSS("#authorize-jira")),
		chromedp.WaitVisible(chromedp.CSS("#consent")),
	)
	if err != nil {
		t.Fatalf("console → consent page: %v", err)
	}
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	if !strings.HasPrefix(loc, sim.URL(atlassim.HostAuth)+"/authorize?") {
		t.Fatalf("the consent page is at %s", loc)
	}
}

// result reads the console page the flow ended on.
func result(t *testing.T, ctx context.Context) (title, message, location string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS("#result"))); err != nil {
		t.Fatalf("waiting for the console's result page: %v", err)
	}
	title, _ = chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#result")))
	message, _ = chromedp.Run(ctx, chromedp.Text(chromedp.CSS("main, body")))
	location, _ = chromedp.Run(ctx, chromedp.Location())
	return title, message, location
}

func TestBrowserAuthorize(t *testing.T) {
	ctx := browser(t)
	pressAuthorize(t, ctx)
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#accept"))); err != nil {
		t.Fatal(err)
	}
	title, body, loc := result(t, ctx)
	if title != "Authorized" || !strings.Contains(body, sim.CloudID()) || !strings.HasPrefix(loc, gw.callbackURL()+"?") {
		t.Fatalf("after Accept: %q at %s:\n%s", title, loc, body)
	}

	// A request through the gateway now runs with the 3LO token.
	sim.ResetRequests()
	resp, err := http.Get(gw.base() + "/rest/api/3/myself")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	rec := sim.RequestsTo(atlassim.HostAPI)
	if resp.StatusCode != 200 || !strings.Contains(string(b), atlassim.DemoAccountID) || len(rec) != 1 ||
		rec[0].AuthKind != "bearer" || rec[0].Principal != atlassim.DemoAccountID ||
		rec[0].Path != "/ex/jira/"+sim.CloudID()+"/rest/api/3/myself" {
		t.Fatalf("through the gateway: %d %s; reached Atlassian as %+v", resp.StatusCode, b, rec)
	}

	// Back on the console, the credential is ready.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#back")), chromedp.WaitVisible(chromedp.CSS("#state-jira"))); err != nil {
		t.Fatal(err)
	}
	if state, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#state-jira"))); state != "ready" {
		t.Errorf("console shows state %q", state)
	}
}

func TestBrowserDeny(t *testing.T) {
	ctx := browser(t)
	pressAuthorize(t, ctx)
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#deny"))); err != nil {
		t.Fatal(err)
	}
	title, body, loc := result(t, ctx)
	if title != "Consent denied" || !strings.HasPrefix(loc, gw.callbackURL()+"?") {
		t.Fatalf("after Deny: %q at %s:\n%s", title, loc, body)
	}
}
