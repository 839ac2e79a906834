package proxy

import (
	"bytes"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/atlasgate/atlasgate/modules/atlasgate"
	"github.com/atlasgate/atlasgate/modules/internal/canonpath"
)

// requestError is a request the proxy refuses before anything reaches
// Atlassian, with the status and the JSON error code the client gets.
type requestError struct {
	status  int
	code    string
	message string
}

func (e *requestError) Error() string { return e.message }

func (e *requestError) write(w http.ResponseWriter) {
	if e.status == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", allowedMethods)
	}
	atlasgate.WriteError(w, e.status, atlasgate.ErrorBody{Error: e.code, Message: e.message})
}

// allowedMethods is the Allow header of a 405.
const allowedMethods = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"

// refusedMethods are never proxied, whatever the policy says: a front end
// that echoes TRACE (Apache's default `TraceEnable On`, many load balancers)
// would send the injected credential back to the caller, and no atlasgate
// mode tunnels (CONNECT).
var refusedMethods = map[string]bool{"TRACE": true, "TRACK": true, "CONNECT": true}

// methodOverrideHeaders make some servers and frameworks treat a request as
// another method than the one the policy judged (a read_only GET becoming a
// DELETE); the gateway does not rely on Atlassian ignoring them.
var methodOverrideHeaders = []string{"X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override"}

// methodOverrideParam is the query or form field with the same effect.
const methodOverrideParam = "_method"

// checkRequest refuses what must never reach Atlassian and puts the path in
// its canonical form (the policy, when there is one, already did): dot
// segments in the path would otherwise leave a Data Center context path or
// the pinned /ex/{product}/{cloudId} prefix at a normalising upstream.
func checkRequest(r *http.Request) *requestError {
	if m := strings.ToUpper(r.Method); refusedMethods[m] {
		return &requestError{http.StatusMethodNotAllowed, "method_not_allowed",
			fmt.Sprintf("the gateway does not forward %s requests", m)}
	}
	for _, h := range methodOverrideHeaders {
		if _, ok := r.Header[http.CanonicalHeaderKey(h)]; ok {
			return &requestError{http.StatusBadRequest, "method_override",
				h + " is not accepted: send the request with the method you mean"}
		}
	}
	p, err := canonpath.Normalize(r.URL.EscapedPath())
	if err != nil {
		return &requestError{http.StatusBadRequest, "invalid_path", "the request path is not accepted: " + err.(*canonpath.PathError).Reason}
	}
	r.URL.Path, r.URL.RawPath = p, ""
	return nil
}

// credentialParams carry credentials in a URL or a form (Data Center's
// os_username and os_password basic auth, OAuth access_token, Connect jwt);
// they are removed like the Authorization header.
var credentialParams = []string{"os_username", "os_password", "os_authType", "access_token", "jwt"}

// maxFormBody is how much of an application/x-www-form-urlencoded body the
// gateway reads to remove credential fields; a larger form is refused (413).
const maxFormBody = 1 << 20

// stripClientCredentials removes every credential the client sent: the
// Authorization, Proxy-Authorization and Cookie headers, credential
// parameters in the query and in a urlencoded form body (Data Center's
// Seraph reads os_username/os_password from either). Trailers are dropped by
// the transport.
func stripClientCredentials(r *http.Request) *requestError {
	r.Header.Del("Authorization")
	r.Header.Del("Proxy-Authorization")
	r.Header.Del("Cookie")
	if r.URL.RawQuery != "" {
		q, override := stripParams(r.URL.RawQuery)
		if override {
			return &requestError{http.StatusBadRequest, "method_override",
				"the _method parameter is not accepted: send the request with the method you mean"}
		}
		r.URL.RawQuery = q
	}
	return stripFormBody(r)
}

// stripFormBody removes credential fields from a urlencoded form body,
// leaving every other byte as the client sent it.
func stripFormBody(r *http.Request) *requestError {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return nil
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "application/x-www-form-urlencoded" {
		return nil
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxFormBody+1))
	r.Body.Close()
	if err != nil {
		return &requestError{http.StatusBadRequest, "bad_request", "the request body could not be read"}
	}
	if len(body) > maxFormBody {
		return &requestError{http.StatusRequestEntityTooLarge, "form_too_large",
			fmt.Sprintf("urlencoded form bodies are limited to %d bytes", maxFormBody)}
	}
	form, override := stripParams(string(body))
	if override {
		return &requestError{http.StatusBadRequest, "method_override",
			"the _method field is not accepted: send the request with the method you mean"}
	}
	b := []byte(form)
	r.Body = io.NopCloser(bytes.NewReader(b))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	r.ContentLength = int64(len(b))
	r.Header.Set("Content-Length", fmt.Sprint(len(b)))
	r.Header.Del("Transfer-Encoding")
	r.TransferEncoding = nil
	return nil
}

// stripParams removes credential parameters from a raw query or urlencoded
// form and reports whether it holds a method override. Pairs are split on
// `&` and on `;` (which some servers accept as a separator, and which
// url.ParseQuery refuses, so a parser-based strip would leave such a query
// unchanged); keys are compared decoded and case-insensitively, and a key
// that is not valid percent-encoding is compared as far as it decodes. What
// is kept goes on byte for byte.
func stripParams(raw string) (string, bool) {
	orig := raw
	var b strings.Builder
	override, changed := false, false
	sep := ""
	for {
		i := strings.IndexAny(raw, "&;")
		piece := raw
		if i >= 0 {
			piece = raw[:i]
		}
		key, _, _ := strings.Cut(piece, "=")
		k := lenientUnescape(key)
		if strings.EqualFold(k, methodOverrideParam) {
			override = true
		}
		if isCredentialParam(k) {
			changed = true
		} else {
			if b.Len() > 0 {
				b.WriteString(sep)
			}
			b.WriteString(piece)
		}
		if i < 0 {
			break
		}
		sep, raw = raw[i:i+1], raw[i+1:]
	}
	if !changed {
		return orig, override
	}
	return b.String(), override
}

func isCredentialParam(k string) bool {
	for _, p := range credentialParams {
		if strings.EqualFold(k, p) {
			return true
		}
	}
	return false
}

// lenientUnescape decodes `+` and every valid %XX, leaving anything else as
// it is, the way a permissive server reads a parameter name.
func lenientUnescape(s string) string {
	if !strings.ContainsAny(s, "%+") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '+':
			b.WriteByte(' ')
		case c == '%' && i+2 < len(s) && canonpath.IsHex(s[i+1]) && canonpath.IsHex(s[i+2]):
			b.WriteByte(canonpath.Unhex(s[i+1])<<4 | canonpath.Unhex(s[i+2]))
			i += 2
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
