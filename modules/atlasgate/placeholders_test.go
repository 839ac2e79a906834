package atlasgate

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestResolveSecret(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "token")
	os.WriteFile(file, []byte("from-file\n"), 0o600)
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	t.Setenv("AG_TEST_SECRET", "from-env")
	t.Setenv("AG_TEST_EMPTY", "")

	cases := []struct {
		in, want, err string
	}{
		{"{env.AG_TEST_SECRET}", "from-env", ""},
		{"{file." + file + "}", "from-file", ""},
		{"", "", "token: required"},
		{"literal-secret", "", "token: must be an {env.NAME} or {file.PATH} placeholder"},
		{"prefix{env.AG_TEST_SECRET}", "", "must be an {env.NAME}"},
		{"{env.AG_TEST_SECRET}{env.AG_TEST_SECRET}", "", "must be an {env.NAME}"},
		{"{http.request.header.X}", "", "must be an {env.NAME}"},
		{"{env.AG_TEST_UNSET_VARIABLE}", "", "token: environment variable AG_TEST_UNSET_VARIABLE is not set"},
		{"{env.AG_TEST_EMPTY}", "", "token: {env.AG_TEST_EMPTY} resolved to an empty value"},
		{"{file." + filepath.Join(dir, "missing") + "}", "", "token: cannot read file " + filepath.Join(dir, "missing") + ": no such file or directory"},
		{"{file." + empty + "}", "", "resolved to an empty value"},
	}
	for _, c := range cases {
		got, err := ResolveSecret("token", c.in)
		if c.err == "" {
			if err != nil || got != c.want {
				t.Errorf("ResolveSecret(%q) = %q, %v; want %q", c.in, got, err, c.want)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("ResolveSecret(%q) error = %v, want %q", c.in, err, c.err)
		}
		if err != nil && (strings.Contains(err.Error(), "from-env") || strings.Contains(err.Error(), "from-file")) {
			t.Errorf("error leaks a secret: %v", err)
		}
	}
}

func TestResolveValueAllowsLiterals(t *testing.T) {
	t.Setenv("AG_TEST_SITE", "acme")
	got, err := ResolveValue("site", "https://{env.AG_TEST_SITE}.atlassian.net")
	if err != nil || got != "https://acme.atlassian.net" {
		t.Errorf("ResolveValue = %q, %v", got, err)
	}
	if _, err := ResolveValue("site", "https://{env.AG_TEST_NOPE}.atlassian.net"); err == nil || !strings.Contains(err.Error(), "AG_TEST_NOPE is not set") {
		t.Errorf("error = %v", err)
	}
}
