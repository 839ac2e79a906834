package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/template"
	"time"

	"github.com/atlasgate/atlasgate/integration/atlassim"
)

// tokenEnv carries the API token to the gateway process, as in production.
const tokenEnv = "ATLASBENCH_TOKEN"

// benchEnv is what both Caddy runs share: the simulator and a temporary
// directory holding its CA, the configs, Caddy's storage and logs.
type benchEnv struct {
	sim    *atlassim.Sim
	dir    string
	caFile string
}

func newEnv() (*benchEnv, error) {
	record := false
	sim, err := atlassim.Start(atlassim.Config{Seed: true, Record: &record})
	if err != nil {
		return nil, fmt.Errorf("starting the simulator: %v", err)
	}
	e := &benchEnv{sim: sim}
	if e.dir, err = os.MkdirTemp("", "atlasbench-"); err == nil {
		e.caFile = filepath.Join(e.dir, "atlassim-ca.pem")
		err = sim.WriteCAFile(e.caFile)
	}
	if err != nil {
		e.close()
		return nil, err
	}
	return e, nil
}

func (e *benchEnv) close() {
	e.sim.Close()
	if e.dir != "" {
		os.RemoveAll(e.dir)
	}
}

// target is one Caddy configuration under test.
type target struct {
	name   string
	site   string // the site block's body
	app    bool   // whether the config has the atlasgate app (credential jira)
	apiKey bool   // whether the app has the api_key authenticator "keys" and requests carry a key
	// handover puts the atlasgate_handover listener wrapper on the server
	// (the reload soak compares with and without it).
	handover bool
	// rules is the size of the full variant's policy (0: defaultRules).
	rules int
	// audit routes the atlasgate.audit events (info) to a file through
	// atlasgate_buffered, as caddyfiles/production.Caddyfile ships.
	audit bool
}

// The configs share the global options; only the site and the atlasgate app
// differ.
const configTemplate = `{
	admin 127.0.0.1:{{.AdminPort}}
	persist_config off
	log {
		level ERROR
	}
	storage file_system {{.Dir}}/storage
{{if .Audit}}	log audit {
		output atlasgate_buffered {
			output file {{.Dir}}/audit.log
		}
		include atlasgate.audit
		level INFO
	}
{{end}}{{if .Handover}}	servers {
		listener_wrappers {
			atlasgate_handover
			tls
		}
	}
{{end}}{{if .App}}	atlasgate {
		credential jira api_token {
			site {{.Site}}
			email {{.Email}}
			token {env.` + tokenEnv + `}
			trusted_ca_file {{.CA}}
		}
{{if .APIKey}}		authenticator keys api_key
{{end}}	}
{{end}}}

http://:{{.Port}} {
	bind 127.0.0.1
{{if .Gen}}	header X-Config-Generation {{.Gen}}
{{end}}{{.Body}}
}
`

// The full variant's policy: the caller's rule comes last, after rules naming
// other users (two thirds; the engine indexes those by user, so they mostly
// cost config size) and rules without an identity condition for other paths
// (a third; every request checks them in order).
const (
	keyOwner     = "bench"
	defaultRules = 301
)

// ruleMix splits n rules into other users' rules and other paths' rules (the
// caller's own rule is the last one).
func ruleMix(n int) (users, paths int) {
	other := n - 1
	return other - other/3, other / 3
}

var (
	plainTarget = target{name: "plain", site: `	reverse_proxy {{.Site}} {
		header_up Host {{.SiteHost}}
		header_up Authorization "{{.Basic}}"
		transport http {
			tls_trust_pool file {{.CA}}
		}
	}`}
	gatewayTarget = target{name: "gateway", app: true, site: `	atlasgate_proxy jira`}
	fullTarget    = target{name: "full", app: true, apiKey: true, audit: true, site: `	atlasgate_auth keys
	atlasgate_policy bench {
{{.OtherRules}}		rule {{.Owner}} {
			users {{.Owner}}
			credential jira
		}
	}
	atlasgate_proxy`}
)

// otherRules renders the full variant's non-matching rules.
func otherRules(n int) string {
	otherUserRules, otherPathRules := ruleMix(n)
	var b strings.Builder
	for i := range otherUserRules {
		fmt.Fprintf(&b, "\t\trule user-%03d {\n\t\t\tusers user-%03d@example.com\n\t\t\tcredential jira\n\t\t}\n", i, i)
	}
	for i := range otherPathRules {
		fmt.Fprintf(&b, "\t\trule project-%03d {\n\t\t\tproduct jira\n\t\t\tpaths /rest/api/3/project/P%03d /rest/api/3/project/P%03d/*\n\t\t\tcredential jira\n\t\t}\n", i, i, i)
	}
	return b.String()
}

func (t target) ruleCount() int {
	if t.rules == 0 {
		return defaultRules
	}
	return t.rules
}

// caddyfile renders the target's config; a generation above 0 (the reload
// soak) makes each reload's config differ, so Caddy does not skip it.
func (t target) caddyfile(e *benchEnv, dir string, port, adminPort, gen int) (string, error) {
	site := e.sim.URL(atlassim.HostSite)
	data := map[string]any{
		"AdminPort": adminPort, "Port": port, "Dir": dir, "CA": e.caFile,
		"Site": site, "SiteHost": strings.TrimPrefix(site, "https://"), "Email": atlassim.DemoEmail,
		"Basic": "Basic " + base64.StdEncoding.EncodeToString([]byte(atlassim.DemoEmail+":"+atlassim.DemoAPIToken)),
		"App":   t.app, "APIKey": t.apiKey, "Owner": keyOwner, "Handover": t.handover, "Gen": gen,
		"Audit": t.audit,
	}
	if t.apiKey {
		data["OtherRules"] = otherRules(t.ruleCount())
	}
	var body, out strings.Builder
	if err := template.Must(template.New("site").Parse(t.site)).Execute(&body, data); err != nil {
		return "", err
	}
	data["Body"] = body.String()
	err := template.Must(template.New("config").Parse(configTemplate)).Execute(&out, data)
	return out.String(), err
}

// caddyProc is a running `caddy run`.
type caddyProc struct {
	env             *benchEnv
	target          target
	dir             string
	port, adminPort int
	cmd             *exec.Cmd
	url             string
	admin           string // the admin API's base URL
	logPath         string // stdout and stderr
	done            chan struct{}
	waitErr         error
}

// startCaddy writes the config and starts Caddy on free ports, in its own
// process group so that a terminal's Ctrl-C reaches only atlasbench, which
// then stops Caddy itself. It returns once Caddy accepts connections.
func startCaddy(ctx context.Context, e *benchEnv, bin string, t target) (*caddyProc, error) {
	dir := filepath.Join(e.dir, t.name)
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, err
	}
	port, adminPort, err := freePorts()
	if err != nil {
		return nil, err
	}
	cf, err := t.caddyfile(e, dir, port, adminPort, 0)
	if err != nil {
		return nil, err
	}
	cfPath := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(cfPath, []byte(cf), 0o600); err != nil {
		return nil, err
	}
	logFile, err := os.Create(filepath.Join(dir, "caddy.log"))
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // Caddy has its own descriptor
	c := &caddyProc{env: e, target: t, dir: dir, port: port, adminPort: adminPort, url: fmt.Sprintf("http://127.0.0.1:%d", port), admin: fmt.Sprintf("http://127.0.0.1:%d", adminPort), logPath: logFile.Name(), done: make(chan struct{})}
	c.cmd = exec.Command(bin, "run", "--config", cfPath, "--adapter", "caddyfile")
	// Caddy keeps its instance ID and autosave under XDG dirs: keep them in
	// the temporary directory too.
	c.cmd.Env = append(os.Environ(), tokenEnv+"="+atlassim.DemoAPIToken,
		"XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
	c.cmd.Stdout, c.cmd.Stderr = logFile, logFile
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting Caddy: %v", err)
	}
	go func() { c.waitErr = c.cmd.Wait(); close(c.done) }()

	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			conn.Close()
			return c, nil
		}
		select {
		case <-c.done:
			return nil, fmt.Errorf("Caddy exited at start (%v):\n%s", c.waitErr, c.output())
		case <-ctx.Done():
			c.stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			c.stop()
			return nil, fmt.Errorf("Caddy did not listen on port %d within 30s:\n%s", port, c.output())
		}
	}
}

// stop interrupts Caddy (a graceful shutdown) and waits for it; after 10s it
// kills it.
func (c *caddyProc) stop() {
	select {
	case <-c.done:
		return
	default:
	}
	_ = c.cmd.Process.Signal(os.Interrupt)
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		fmt.Fprintln(os.Stderr, "atlasbench: Caddy did not stop within 10s of SIGINT; killing it")
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

// err reports whether Caddy exited early.
func (c *caddyProc) err() error {
	select {
	case <-c.done:
		return fmt.Errorf("Caddy exited: %v", c.waitErr)
	default:
		return nil
	}
}

// output is the end of Caddy's log, for error messages.
func (c *caddyProc) output() string {
	const max = 4000
	b, _ := os.ReadFile(c.logPath)
	s := string(b)
	if len(s) > max {
		s = "…" + s[len(s)-max:]
	}
	return s
}

// cpuSeconds is the process's user+system CPU time from /proc/<pid>/stat, or
// -1 if it cannot be read.
func (c *caddyProc) cpuSeconds() float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c.cmd.Process.Pid))
	if err != nil {
		return -1
	}
	// Fields after "(comm)": state is field 3, utime 14 and stime 15, in
	// clock ticks of USER_HZ, which is 100 on Linux.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return -1
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return -1
	}
	return float64(utime+stime) / 100
}

// peakRSS is VmHWM from /proc/<pid>/status in bytes, or -1: the peak resident
// set over the whole life of the process.
func (c *caddyProc) peakRSS() int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", c.cmd.Process.Pid))
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return -1
			}
			return kb * 1024
		}
	}
	return -1
}

// freePorts returns two distinct free 127.0.0.1 ports (site and admin).
func freePorts() (int, int, error) {
	var ports []int
	for range 2 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, 0, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports[0], ports[1], nil
}

// createAPIKey issues a key of the "keys" authenticator for keyOwner through
// the admin API and returns it.
func (c *caddyProc) createAPIKey() (string, error) {
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Post(c.admin+"/atlasgate/api-keys/keys", "application/json",
		strings.NewReader(`{"owner":"`+keyOwner+`","expires_in":"1d"}`))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("status %d, want 201: %.500s", resp.StatusCode, body)
	}
	var k struct {
		Key string `json:"key"`
	}
	if err := json.Unmarshal(body, &k); err != nil {
		return "", fmt.Errorf("decoding the answer: %v", err)
	}
	if !strings.HasPrefix(k.Key, "agk_") {
		return "", fmt.Errorf("the answer holds no agk_ key")
	}
	return k.Key, nil
}

// get does one GET with the given headers and a timeout and returns the status
// and body.
func get(url string, header http.Header) (int, []byte, error) {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return 0, nil, err
	}
	req.Header = header.Clone()
	if req.Header == nil {
		req.Header = http.Header{}
	}
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}
