package console

import (
	"bytes"
	"html/template"
	"net/http"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// The pages are server-rendered with html/template (contextual escaping of
// everything a request or a credential could contribute) and carry no
// script at all, which the CSP enforces.
var pages = template.Must(template.New("").Funcs(template.FuncMap{
	"when":   when,
	"seen":   seen,
	"plural": plural,
}).Parse(`
{{define "head"}}<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.}} – atlasgate</title>
<style>
body { font-family: system-ui, sans-serif; color: #172b4d; margin: 2rem; }
table { border-collapse: collapse; width: 100%; font-size: .9rem; }
th, td { text-align: left; padding: .4rem .6rem; border-bottom: 1px solid #dfe1e6; vertical-align: top; }
td { overflow-wrap: break-word; }
.state, button { white-space: nowrap; }
.state { font-weight: bold; }
.ready { color: #006644; } .unauthorized, .needs_reauthorization { color: #bf2600; } .unreadable { color: #974f0c; }
.warning, .rate_limited, .failing { color: #974f0c; }
.working { color: #006644; } .rejected { color: #bf2600; }
button { padding: .3rem 1rem; }
</style>
</head>
<body>
{{end}}

{{define "index"}}{{template "head" "Credentials"}}
<h1>atlasgate credentials</h1>
<p>The state of each OAuth credential (press <strong>Authorize</strong> to grant or renew it), and for every
credential what Atlassian last answered through it on this gateway instance: a revoked or expired API token shows
as <span class="rejected">rejected with 401</span>. Reload the page for fresh figures.</p>
<table id="credentials">
<tr><th>Credential</th><th>Type</th><th>State</th><th>Atlassian's last answer</th><th>Last hour</th><th>Rate limit</th><th>Site</th><th>cloudId</th><th>Access token expires</th><th>Next refresh</th><th>Granted</th><th>Refreshed</th><th>Grant expires (365 days)</th><th></th></tr>
{{range .Credentials}}{{$name := .Name}}<tr id="credential-{{.Name}}">
<td>{{.Name}}</td>
<td>{{.Type}}</td>
{{with .OAuth}}<td><span class="state {{.State}}" id="state-{{.Name}}">{{.State}}</span>{{with .Reason}}<br><small>{{.}}</small>{{end}}{{if .PerUser}}<br><small>per user: {{.Users}} authorized; this row is your own grant</small>{{end}}{{range .Warnings}}<br><small class="warning">⚠ {{.}}</small>{{end}}</td>{{else}}<td>—</td>{{end}}
{{with .Upstream}}<td id="upstream-{{$name}}"><span class="{{.Verdict}}">{{seen .}}</span><form method="post" action="{{$.Prefix}}/check/{{$name}}"><button id="check-{{$name}}" type="submit">Check now</button></form></td>
<td id="hour-{{$name}}">{{plural .RequestsLastHour "request"}}{{if .ErrorsLastHour}}, <span class="rejected">{{plural .ErrorsLastHour "error"}}</span>{{end}}</td>
<td id="ratelimit-{{$name}}">{{with .RateLimitRemaining}}{{.}} remaining{{else}}—{{end}}{{if .RateLimitNearLimit}}<br><small class="warning">⚠ near the limit</small>{{end}}{{if not .RateLimitSeenAt.IsZero}}<br><small>as of {{when .RateLimitSeenAt}}</small>{{end}}</td>{{end}}
{{with .OAuth}}<td>{{.Site}}</td>
<td><code>{{.CloudID}}</code></td>
<td>{{when .AccessExpiry}}</td>
<td id="refresh-{{$name}}">{{when .NextRefresh}}</td>
<td>{{when .GrantedAt}}</td>
<td>{{when .RefreshedAt}}</td>
<td>{{when .AbsoluteExpiry}}</td>
<td><form method="post" action="{{$.Prefix}}/authorize/{{.Name}}"><button id="authorize-{{.Name}}" type="submit">Authorize</button></form></td>
{{else}}<td>{{.Site}}</td><td></td><td></td><td></td><td></td><td></td><td></td><td></td>{{end}}
</tr>
{{else}}<tr><td colspan="14">The atlasgate app has no credentials.</td></tr>
{{end}}</table>
</body>
</html>
{{end}}

{{define "confirm"}}{{template "head" "Authorize"}}
<h1>Authorize credential <span id="credential">{{.Name}}</span></h1>
<p>State: <span class="state {{.State}}" id="state">{{.State}}</span></p>
<p>Authorize lets the gateway call {{with .Site}}<span id="site">{{.}}</span>{{else}}Atlassian{{end}} as
{{if .PerUser}}your own Atlassian account, for your requests{{else}}the Atlassian account you consent with, for every caller this credential serves{{end}}.
You will be sent to Atlassian's consent page.</p>
<form method="post" action="{{.Prefix}}/authorize/{{.Name}}"><button id="authorize" type="submit">Authorize</button></form>
<p><a id="back" href="{{.Prefix}}/">Back to the console</a></p>
</body>
</html>
{{end}}

{{define "success"}}{{template "head" "Authorized"}}
<h1 id="result">Authorized</h1>
<p>Credential <strong id="credential">{{.Name}}</strong> is authorized for <span id="site">{{.Site}}</span>
(cloudId <code id="cloud-id">{{.CloudID}}</code>). The gateway now calls Atlassian with it and keeps it refreshed.</p>
<p><a id="back" href="{{.Console}}">Back to the console</a></p>
</body>
</html>
{{end}}

{{define "error"}}{{template "head" .Title}}
<h1 id="result">{{.Title}}</h1>
<p id="error">{{.Message}}</p>
<p><a id="back" href="{{.Console}}">Back to the console</a></p>
</body>
</html>
{{end}}
`))

type indexData struct {
	Prefix      string
	Credentials []CredentialStatus
}

type successData struct{ Name, Site, CloudID, Console string }

type confirmData struct {
	Name, Site, State, Prefix string
	PerUser                   bool
}

type errorData struct{ Title, Message, Console string }

// page renders a template into a buffer first, so a template failure never
// leaves half a page with a 200.
func (h *Handler) page(w http.ResponseWriter, status int, name string, data any) error {
	var buf bytes.Buffer
	if err := pages.ExecuteTemplate(&buf, name, data); err != nil {
		return caddyhttp.Error(http.StatusInternalServerError, err)
	}
	h.securityHeaders(w)
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
	return nil
}

// errorPage renders an error page. title and message are escaped; they may
// name a credential, never a secret.
func (h *Handler) errorPage(w http.ResponseWriter, status int, title, message string) error {
	return h.page(w, status, "error", errorData{Title: title, Message: message, Console: h.PathPrefix + "/"})
}

// serveIndex lists the credentials.
func (h *Handler) serveIndex(w http.ResponseWriter, r *http.Request) error {
	return h.page(w, http.StatusOK, "index", indexData{Prefix: h.PathPrefix, Credentials: statuses(r.Context(), h.creds)})
}
