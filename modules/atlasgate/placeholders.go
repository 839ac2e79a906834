package atlasgate

import (
	"fmt"
	"os"
	"regexp"
	"strings"

	"github.com/caddyserver/caddy/v2"
)

// secretPlaceholder matches a value made of exactly one `{env.*}` or `{file.*}`
// placeholder, the only forms a secret may take in config.
var secretPlaceholder = regexp.MustCompile(`^\{(env|file)\.([^{}]+)\}$`)

// anyPlaceholder finds the {env.*} and {file.*} placeholders inside a value.
var anyPlaceholder = regexp.MustCompile(`\{(env|file)\.([^{}]+)\}`)

// IsSecretPlaceholder reports whether v is a single {env.*} or {file.*} placeholder.
func IsSecretPlaceholder(v string) bool { return secretPlaceholder.MatchString(v) }

// CheckSecretField returns an error naming field unless v is a single {env.*} or
// {file.*} placeholder. Literal secrets are refused so that a secret never sits
// in the config that `caddy adapt`, the admin API and backups expose.
func CheckSecretField(field, v string) error {
	if v == "" {
		return fmt.Errorf("%s: required", field)
	}
	if !IsSecretPlaceholder(v) {
		return fmt.Errorf("%s: must be an {env.NAME} or {file.PATH} placeholder, not a literal value, so the secret never appears in the config", field)
	}
	return nil
}

// ResolveSecret resolves a secret placeholder (see CheckSecretField) and fails,
// naming the field and the variable or file, if it resolves to nothing. It never
// returns the value in an error.
func ResolveSecret(field, v string) (string, error) {
	if err := CheckSecretField(field, v); err != nil {
		return "", err
	}
	return resolve(field, v)
}

// ResolveValue resolves the global placeholders ({env.*}, {file.*}, …) of a
// non-secret field, failing with a message that names the field and what was
// missing when the result is empty.
func ResolveValue(field, v string) (string, error) {
	if v == "" {
		return "", fmt.Errorf("%s: required", field)
	}
	return resolve(field, v)
}

func resolve(field, v string) (string, error) {
	// Name what is missing before resolving, so that an unset variable or an
	// unreadable file is reported as such instead of as an empty value.
	for _, m := range anyPlaceholder.FindAllStringSubmatch(v, -1) {
		switch m[1] {
		case "env":
			if _, ok := os.LookupEnv(m[2]); !ok {
				return "", fmt.Errorf("%s: environment variable %s is not set", field, m[2])
			}
		case "file":
			if _, err := os.Stat(m[2]); err != nil {
				return "", fmt.Errorf("%s: cannot read file %s: %v", field, m[2], pathError(err))
			}
		}
	}
	out := strings.TrimSpace(caddy.NewReplacer().ReplaceKnown(v, ""))
	if out == "" {
		return "", fmt.Errorf("%s: %s resolved to an empty value", field, v)
	}
	return out, nil
}

// pathError strips the path from an *os.PathError, which the caller already names.
func pathError(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}
