package atlassim

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
	"time"
)

// Demo data loaded by Config.Seed. The values are made up and look like the
// real thing only so that log redaction and header handling see realistic
// shapes; they grant nothing anywhere.
const (
	DemoCloudID     = "6a7d3f1e-2b4c-4d5e-8f90-a1b2c3d4e5f6"
	DemoAccountID   = "5b10ac8d82e05b22cc7d4ef5"
	DemoEmail       = "alice@example.com"
	DemoDisplayName = "Alice Example"
	DemoUsername    = "alice" // Data Center login name

	// DemoAPIToken is a classic (unscoped) Cloud API token: Basic
	// DemoEmail:DemoAPIToken at the site.
	DemoAPIToken = "ATATT3xFfGF0demoClassicTokenNotReal0123456789abcdefABCDEF=1A2B3C4D"
	// DemoScopedToken is a scoped Cloud API token (DemoScopes): Basic
	// DemoEmail:DemoScopedToken, valid only at api.atlassian.com/ex/...
	DemoScopedToken = "ATATT3xFfGF0demoScopedTokenNotReal9876543210fedcbaFEDCBA=5E6F7A8B"
	// DemoBitbucketAPIToken is a Bitbucket Cloud API token: Basic
	// DemoEmail:DemoBitbucketAPIToken at the bitbucket host.
	DemoBitbucketAPIToken = "ATATT3xFfGF0demoBitbucketTokenNotReal00112233445566778899=9C0D1E2F"
	// DemoBitbucketAccessToken is a workspace access token for
	// DemoWorkspace: Bearer at the bitbucket host.
	DemoBitbucketAccessToken = "ATCTT3xFfGN0demoWorkspaceAccessTokenNotRealAABBCCDDEEFF=0A1B2C3D"
	DemoWorkspace            = "acme"
	// DemoPAT is Alice's Data Center personal access token, valid as Bearer
	// at jira-dc, confluence-dc and bitbucket-dc.
	DemoPAT = "NDM2OTY1NzMxMjM0OkRlbW9QQVRmb3JBbGljZU5vdFJlYWw="
	// DemoDCPassword is Alice's Data Center password (Basic alice:password).
	DemoDCPassword = "correct-horse-battery-staple"

	DemoAttachmentID = "10001"
	DemoPageID       = "65537"
	DemoTinyLink     = "AQAB" // Confluence tiny link of page 65537
)

// DemoScopes are the scopes of DemoScopedToken.
var DemoScopes = []string{"read:jira-user", "read:jira-work", "write:jira-work", "read:confluence-content.all", "read:page:confluence"}

// User is an Atlassian account. Username is the Data Center login name.
type User struct {
	AccountID, Email, DisplayName, Username string
}

// APIToken is a Cloud API token bound to an account's email address.
type APIToken struct {
	Email string
	Token string
	// Scopes nil means a classic unscoped token (site only); non-nil means a
	// scoped token (api.atlassian.com/ex only), limited to these scopes.
	Scopes    []string
	ExpiresAt time.Time // zero means never
	Bitbucket bool      // valid at the bitbucket host instead of site/api
}

type issue struct {
	ID, Key, Project, Summary, Status string
	Description                       any // ADF document or string, stored as sent
}

type page struct{ ID, SpaceKey, SpaceID, Title, Body string }

type repo struct {
	Slug, Name, UUID string
	Private          bool
}

type attachment struct {
	ID, Filename, MimeType, FileID string
	Content                        []byte
}

// store holds the simulator's mutable data, guarded by Sim.mu.
type store struct {
	users       map[string]User              // by accountId
	apiTokens   map[string]APIToken          // by token value
	pats        map[string]map[string]string // host → PAT → username
	dcPasswords map[string]map[string]string // host → username → password
	bbAccess    map[string]string            // access token → workspace
	issues      []*issue
	nextKey     map[string]int // project key → next issue number
	nextIssueID int
	pages       []*page
	repos       map[string][]repo // workspace → repositories
	attachments map[string]*attachment
	mediaTokens map[string]string // media token → file id
}

func newStore() store {
	return store{
		users:       map[string]User{},
		apiTokens:   map[string]APIToken{},
		pats:        map[string]map[string]string{},
		dcPasswords: map[string]map[string]string{},
		bbAccess:    map[string]string{},
		nextKey:     map[string]int{},
		nextIssueID: 10000,
		repos:       map[string][]repo{},
		attachments: map[string]*attachment{},
		mediaTokens: map[string]string{},
	}
}

// AddUser adds or replaces an account.
func (s *Sim) AddUser(u User) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.data.users[u.AccountID] = u
}

// AddAPIToken adds a Cloud or Bitbucket API token; its Email must belong to
// a user added with AddUser for it to authenticate.
func (s *Sim) AddAPIToken(t APIToken) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.data.apiTokens[t.Token] = t
}

// AddPAT adds a Data Center personal access token for username at one of the
// DC hosts (HostJiraDC, HostConfluenceDC, HostBitbucketDC).
func (s *Sim) AddPAT(host, token, username string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.data.pats[host] == nil {
		s.data.pats[host] = map[string]string{}
	}
	s.data.pats[host][token] = username
}

// AddDCPassword sets username's password for Basic authentication at a DC host.
func (s *Sim) AddDCPassword(host, username, password string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.data.dcPasswords[host] == nil {
		s.data.dcPasswords[host] = map[string]string{}
	}
	s.data.dcPasswords[host][username] = password
}

// AddBitbucketAccessToken adds a repository/project/workspace access token
// (Bearer at the bitbucket host) that can see only workspace.
func (s *Sim) AddBitbucketAccessToken(token, workspace string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.data.bbAccess[token] = workspace
}

// userByEmail and userByUsername must be called with s.mu held.
func (s *Sim) userByEmail(email string) (User, bool) {
	for _, u := range s.data.users {
		if strings.EqualFold(u.Email, email) {
			return u, true
		}
	}
	return User{}, false
}

func (s *Sim) userByUsername(name string) (User, bool) {
	for _, u := range s.data.users {
		if u.Username == name {
			return u, true
		}
	}
	return User{}, false
}

// seed loads the demo data described by the Demo* constants.
func (s *Sim) seed() {
	s.AddUser(User{AccountID: DemoAccountID, Email: DemoEmail, DisplayName: DemoDisplayName, Username: DemoUsername})
	s.AddAPIToken(APIToken{Email: DemoEmail, Token: DemoAPIToken})
	s.AddAPIToken(APIToken{Email: DemoEmail, Token: DemoScopedToken, Scopes: DemoScopes})
	s.AddAPIToken(APIToken{Email: DemoEmail, Token: DemoBitbucketAPIToken, Bitbucket: true})
	s.AddBitbucketAccessToken(DemoBitbucketAccessToken, DemoWorkspace)
	s.seedOAuth()
	for _, h := range []string{HostJiraDC, HostConfluenceDC, HostBitbucketDC} {
		s.AddPAT(h, DemoPAT, DemoUsername)
		s.AddDCPassword(h, DemoUsername, DemoDCPassword)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.createIssue("DEMO", "Route Jira traffic through the gateway", "The gateway injects credentials so clients never hold them.")
	s.createIssue("DEMO", "Rotate the demo API token", "Tokens created after Dec 2024 expire within a year.")
	s.data.pages = []*page{
		{ID: DemoPageID, SpaceKey: "DEMO", SpaceID: "98305", Title: "Gateway design", Body: "<p>How atlasgate injects Atlassian credentials.</p>"},
		{ID: "65538", SpaceKey: "DEMO", SpaceID: "98305", Title: "Runbook", Body: "<p>Restart the gateway with caddy reload.</p>"},
	}
	s.data.repos[DemoWorkspace] = []repo{
		{Slug: "widgets", Name: "widgets", UUID: "{3c4f5a6b-7c8d-4e9f-a0b1-c2d3e4f5a6b7}", Private: true},
		{Slug: "gadgets", Name: "gadgets", UUID: "{8d9e0f1a-2b3c-4d4e-9f5a-6b7c8d9e0f1a}", Private: false},
	}
	s.data.attachments[DemoAttachmentID] = &attachment{
		ID: DemoAttachmentID, Filename: "notes.txt", MimeType: "text/plain",
		FileID: "b1c2d3e4-f5a6-4b7c-8d9e-0f1a2b3c4d5e", Content: []byte("attachment bytes served by the media host\n"),
	}
}

// randomHex returns n random bytes hex-encoded, for cookies and media tokens.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
