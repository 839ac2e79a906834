// Package cluster tests the gateway on Redis: the `storage redis` module in
// the real in-process Caddy against a real redis-server, and the state that
// replicas share through it.
package cluster

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/redis/go-redis/v9"

	"github.com/atlasgate/atlasgate/integration/itest"
	"github.com/atlasgate/atlasgate/integration/redistest"
)

// binDir holds the gateway binary the replica tests build once.
var binDir string

func TestMain(m *testing.M) {
	binDir, _ = os.MkdirTemp("", "atlasgate-cluster-")
	code := m.Run()
	_ = caddy.Stop()
	os.RemoveAll(binDir)
	os.Exit(code)
}

const envRedisPassword = "IT_CLUSTER_REDIS_PASSWORD"

func globals(adminPort int, storage string) string {
	return fmt.Sprintf(`	admin 127.0.0.1:%d
	persist_config off
	log {
		level ERROR
	}
	default_bind 127.0.0.1
	skip_install_trust
	auto_https disable_redirects
	storage redis {
%s
	}
`, adminPort, storage)
}

// Caddy runs on Redis storage: API keys issued through the admin API and
// Caddy's own certificates (its internal CA and the site's leaf) land in
// Redis under the key prefix, behind a password read from the environment.
func TestCaddyOnRedisStorage(t *testing.T) {
	srv := redistest.Start(t, "--requirepass", "s3cret-redis")
	t.Setenv(envRedisPassword, "s3cret-redis")
	adminPort, port := itest.FreePort(t), itest.FreePort(t)
	cf := "{\n" + globals(adminPort, fmt.Sprintf("\t\taddresses %s\n\t\tpassword {env.%s}\n\t\tkey_prefix it-storage", srv.Addr, envRedisPassword)) + `
	atlasgate {
		authenticator keys api_key
	}
}

https://localhost:` + fmt.Sprint(port) + ` {
	tls internal
	atlasgate_auth keys
	respond "hello {http.auth.user.id}"
}
`
	itest.MustLoad(t, cf)
	t.Cleanup(func() { _ = caddy.Stop() }) // before redis-server stops

	body, _ := json.Marshal(map[string]any{"owner": "deploy-bot"})
	resp, err := http.Post(fmt.Sprintf("http://127.0.0.1:%d/atlasgate/api-keys/keys", adminPort), "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("creating a key: %d %s", resp.StatusCode, b)
	}
	var issued struct{ Key, ID string }
	_ = json.Unmarshal(b, &issued)

	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"}}}
	// The site's certificate is issued in the background: wait for it.
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("https://127.0.0.1:%d/", port), nil)
		req.Host = "localhost"
		req.Header.Set("Authorization", "Bearer "+issued.Key)
		if resp, err = client.Do(req); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no TLS on the site after 30s: %v", err)
		}
		time.Sleep(50 * time.Millisecond) // waiting for the certificate
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(b) != "hello deploy-bot" {
		t.Fatalf("request with the key: %d %s", resp.StatusCode, b)
	}

	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, Password: "s3cret-redis"})
	defer rdb.Close()
	keys, err := rdb.ZRange(context.Background(), "{it-storage}:idx", 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"atlasgate/api_keys/default/" + issued.ID + ".json",
		"pki/authorities/local/root.crt",
		"certificates/local/localhost/localhost.crt",
	} {
		if !slices.Contains(keys, want) {
			t.Errorf("Redis holds no %s; it holds %v", want, keys)
		}
	}
}

// A bad storage config fails the load with a message naming the field, and
// never holds the secret.
func TestBadRedisStorageConfig(t *testing.T) {
	srv := redistest.Start(t)
	adminPort := itest.FreePort(t)
	cases := map[string]struct{ storage, want string }{
		"literal password":   {"\t\taddresses " + srv.Addr + "\n\t\tpassword hunter2-literal", "password: must be an {env.NAME} or {file.PATH} placeholder"},
		"unset variable":     {"\t\taddresses " + srv.Addr + "\n\t\tpassword {env.IT_CLUSTER_UNSET_VAR}", "password: environment variable IT_CLUSTER_UNSET_VAR is not set"},
		"address":            {"\t\taddresses redis.example", `addresses: "redis.example" is not host:port`},
		"limits_on_error":    {"\t\taddresses " + srv.Addr + "\n\t\tlimits_on_error maybe", `limits_on_error: "maybe" is neither open nor closed`},
		"lock_lease":         {"\t\taddresses " + srv.Addr + "\n\t\tlock_lease 100ms", "lock_lease: at least 1s"},
		"key_prefix":         {"\t\taddresses " + srv.Addr + "\n\t\tkey_prefix {a}", "key_prefix"},
		"sentinel+cluster":   {"\t\taddresses " + srv.Addr + "\n\t\tmaster_name m\n\t\tcluster", "master_name and cluster"},
		"unknown option":     {"\t\taddresses " + srv.Addr + "\n\t\tpasword x", `unrecognized option "pasword"`},
		"tls ca_file":        {"\t\taddresses " + srv.Addr + "\n\t\ttls {\n\t\t\tca_file /nonexistent/ca.pem\n\t\t}", "tls ca_file"},
		"tls unknown option": {"\t\taddresses " + srv.Addr + "\n\t\ttls {\n\t\t\tcert x\n\t\t}", `tls: unrecognized option "cert"`},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			err := itest.Load("{\n" + globals(adminPort, c.storage) + "}\n")
			if err == nil {
				t.Fatal("config accepted")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not name %q", err, c.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("error leaks the password: %v", err)
			}
		})
	}
}
