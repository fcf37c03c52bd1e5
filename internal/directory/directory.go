// Package directory is the node's register of who may ask for a token:
// organisations (by ODS code and type), user accounts with the roles they
// hold at organisations, and client applications (user-facing apps and
// system-to-system clients) with their redirect URIs, keys and maximum
// scopes.
//
// It is storage and validation only. Deciding whether a password, a TOTP
// code or a client assertion is right is the authorisation server's job
// (package auth/smart); deciding what a role may see is the access layer's.
// Everything is kept in the store's key-value space (store.KVStore), one
// JSON document per entry, so both backends hold it with no schema of its
// own; updates are compare-and-swap, so two administrators editing one
// account never lose a change.
package directory

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/sharedcare/sharedcare/internal/auth"
	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/store"
	"github.com/sharedcare/sharedcare/internal/synth"
)

// Buckets of the key-value space the directory owns.
const (
	bucketOrgs    = "orgs"
	bucketUsers   = "users"
	bucketClients = "clients"
)

// Roles are the role names a user may hold: the roles of the access policy
// (policy/sharedcare.policy) that a person can be given. "patient" and
// "proxy" are held about a Patient rather than at an organisation.
var Roles = []string{
	"clinician", "nurse", "paramedic", "social-worker", "care-worker", "pharmacist",
	"admin-clerk", "privacy-officer", RolePatient, RoleProxy,
}

// Roles held about a person rather than at an organisation.
const (
	RolePatient = "patient"
	RoleProxy   = "proxy"
)

// Organisation is a care organisation that users work for and system
// clients feed for.
type Organisation struct {
	ODS  string `json:"ods"`  // ODS code, e.g. "RXX" or "A81001"
	Name string `json:"name"` // display name
	Type string `json:"type"` // a region organisation type, e.g. "gp-practice"
}

// Assignment is one role a user holds: at an organisation (Org), or, for
// the patient and proxy roles, about a person (Patient).
type Assignment struct {
	Role    string `json:"role"`
	Org     string `json:"org,omitempty"`
	Patient string `json:"patient,omitempty"`
	// FHIRUser is the resource the user is in this role, if known:
	// "Practitioner/x", "Patient/y", or the RelatedPerson a proxy is
	// ("RelatedPerson/z"), which the person's Consent names.
	FHIRUser string `json:"fhir_user,omitempty"`
}

// Same reports whether b is the same role as a (the same role at the same
// organisation or about the same person), whatever its FHIRUser.
func (a Assignment) Same(b Assignment) bool {
	return a.Role == b.Role && a.Org == b.Org && a.Patient == b.Patient
}

// String is the assignment as the login form and the admin command show
// and take it: "ORG:role" or "role:Patient/id".
func (a Assignment) String() string {
	if a.Patient != "" {
		return a.Role + ":Patient/" + a.Patient
	}
	return a.Org + ":" + a.Role
}

// User is a built-in account.
type User struct {
	Name         string       `json:"name"` // the login name
	Display      string       `json:"display,omitempty"`
	PasswordHash string       `json:"password_hash"`         // argon2id, PHC format
	TOTPSecret   string       `json:"totp_secret,omitempty"` // base32; empty when the account has no second factor
	Roles        []Assignment `json:"roles,omitempty"`
	Disabled     bool         `json:"disabled,omitempty"`
	Created      time.Time    `json:"created"`

	version int64 // of the stored entry, for compare-and-swap
}

// ClientType is how a client authenticates and what it may ask for.
type ClientType string

// Client types (SMART App Launch v2 client types).
const (
	// Public is a user-facing app that cannot keep a secret (a browser or
	// mobile app): authorisation code with PKCE, identified by client_id.
	Public ClientType = "public"
	// Confidential is a user-facing app with a server side that
	// authenticates with private_key_jwt (SMART
	// "client-confidential-asymmetric").
	Confidential ClientType = "confidential"
	// System is a SMART Backend Services client: client credentials with
	// private_key_jwt, no user, acting for its organisation.
	System ClientType = "system"
)

// Client is a registered application.
type Client struct {
	ID           string          `json:"id"`
	Name         string          `json:"name,omitempty"`
	Type         ClientType      `json:"type"`
	RedirectURIs []string        `json:"redirect_uris,omitempty"`
	Scopes       []string        `json:"scopes"`             // the most this client may ever be granted
	JWKS         json.RawMessage `json:"jwks,omitempty"`     // registered public keys (a JWK Set)
	JWKSURL      string          `json:"jwks_url,omitempty"` // or where the client publishes them
	Org          string          `json:"org,omitempty"`      // System: the organisation it feeds for
	Disabled     bool            `json:"disabled,omitempty"`
	Created      time.Time       `json:"created"`
}

// Directory reads and writes the register in a key-value store.
type Directory struct {
	kv store.KVStore
}

// New returns the directory kept in kv.
func New(kv store.KVStore) *Directory { return &Directory{kv: kv} }

// ErrExists is the kind of error returned when creating what already exists.
func exists(what, key string) error {
	return fhir.Errorf(fhir.EConflict, "", "%s %q already exists", what, key)
}

func notFound(what, key string) error {
	return fhir.Errorf(fhir.ENotFound, "", "no %s %q", what, key)
}

// --- organisations ---

// CreateOrg registers an organisation; EConflict if its ODS code is taken.
func (d *Directory) CreateOrg(ctx context.Context, o Organisation) error {
	o.ODS = strings.ToUpper(strings.TrimSpace(o.ODS))
	if err := o.Validate(); err != nil {
		return err
	}
	return d.create(ctx, bucketOrgs, o.ODS, o, "organisation")
}

// Validate checks an organisation's fields.
func (o Organisation) Validate() error {
	if !ValidODS(o.ODS) {
		return fhir.Invalid("", "ODS code %q must be 3 to 10 capital letters or digits", o.ODS)
	}
	if !slices.Contains(synth.Kinds, synth.Kind(o.Type)) {
		return fhir.Invalid("", "organisation type %q is not one of %s", o.Type, kindList())
	}
	if len(o.Name) > 200 {
		return fhir.Invalid("", "organisation name is longer than 200 characters")
	}
	return nil
}

func kindList() string {
	var s []string
	for _, k := range synth.Kinds {
		s = append(s, string(k))
	}
	return strings.Join(s, ", ")
}

// Org returns the organisation with ODS code ods.
func (d *Directory) Org(ctx context.Context, ods string) (*Organisation, error) {
	var o Organisation
	if _, err := d.get(ctx, bucketOrgs, strings.ToUpper(ods), &o, "organisation"); err != nil {
		return nil, err
	}
	return &o, nil
}

// Orgs lists every organisation by ODS code.
func (d *Directory) Orgs(ctx context.Context) ([]*Organisation, error) {
	return list[Organisation](ctx, d, bucketOrgs)
}

// --- users ---

// CreateUser registers an account; EConflict if the name is taken. Every
// organisation its roles name must exist.
func (d *Directory) CreateUser(ctx context.Context, u *User) error {
	if err := d.checkUser(ctx, u); err != nil {
		return err
	}
	if u.Created.IsZero() {
		u.Created = time.Now().UTC()
	}
	return d.create(ctx, bucketUsers, u.Name, u, "user")
}

func (d *Directory) checkUser(ctx context.Context, u *User) error {
	if !validName(u.Name) {
		return fhir.Invalid("", "user name %q must be 1 to 64 of a-z, 0-9, '.', '_', '-' and '@'", u.Name)
	}
	if !strings.HasPrefix(u.PasswordHash, "$argon2id$") {
		return fhir.Invalid("", "a user needs an argon2id password hash")
	}
	for i, a := range u.Roles {
		if err := d.checkAssignment(ctx, a); err != nil {
			return err
		}
		if slices.ContainsFunc(u.Roles[:i], a.Same) {
			return fhir.Invalid("", "role %s is given twice", a)
		}
	}
	return nil
}

func (d *Directory) checkAssignment(ctx context.Context, a Assignment) error {
	if !slices.Contains(Roles, a.Role) {
		return fhir.Invalid("", "role %q is not one of %s", a.Role, strings.Join(Roles, ", "))
	}
	if a.Role == RolePatient || a.Role == RoleProxy {
		if a.Org != "" || !fhir.ValidID(a.Patient) {
			return fhir.Invalid("", "role %s is held about a Patient (an id), not at an organisation", a.Role)
		}
		// The access model knows a patient as their Patient and a proxy as
		// the RelatedPerson the patient's Consent names.
		if a.Role == RolePatient && a.FHIRUser != "Patient/"+a.Patient {
			return fhir.Invalid("", "a patient's fhirUser must be their Patient (Patient/%s)", a.Patient)
		}
		if a.Role == RoleProxy && !strings.HasPrefix(a.FHIRUser, "RelatedPerson/") {
			return fhir.Invalid("", "a proxy needs the RelatedPerson they are: proxy:Patient/ID,RelatedPerson/ID")
		}
	} else {
		if a.Patient != "" {
			return fhir.Invalid("", "role %s is held at an organisation, not about a Patient", a.Role)
		}
		if _, err := d.Org(ctx, a.Org); err != nil {
			if fhir.IsKind(err, fhir.ENotFound) {
				return fhir.Invalid("", "organisation %q is not registered (sharedcare admin org create)", a.Org)
			}
			return err
		}
	}
	if a.FHIRUser != "" {
		typ, id, ok := strings.Cut(a.FHIRUser, "/")
		if !ok || !slices.Contains([]string{"Practitioner", "PractitionerRole", "Patient", "RelatedPerson"}, typ) || !fhir.ValidID(id) {
			return fhir.Invalid("", "fhirUser %q must be Practitioner/, PractitionerRole/, Patient/ or RelatedPerson/ and an id", a.FHIRUser)
		}
	}
	return nil
}

// User returns the account called name.
func (d *Directory) User(ctx context.Context, name string) (*User, error) {
	var u User
	v, err := d.get(ctx, bucketUsers, name, &u, "user")
	if err != nil {
		return nil, err
	}
	u.version = v
	return &u, nil
}

// Users lists every account by name.
func (d *Directory) Users(ctx context.Context) ([]*User, error) {
	return list[User](ctx, d, bucketUsers)
}

// UpdateUser applies change to the account called name and stores it,
// retrying when another writer got there first. change may be called more
// than once.
func (d *Directory) UpdateUser(ctx context.Context, name string, change func(*User) error) (*User, error) {
	for range 20 {
		u, err := d.User(ctx, name)
		if err != nil {
			return nil, err
		}
		if err := change(u); err != nil {
			return nil, err
		}
		u.Name = name
		if err := d.checkUser(ctx, u); err != nil {
			return nil, err
		}
		b, err := json.Marshal(u)
		if err != nil {
			return nil, fhir.Internal(err)
		}
		err = d.kv.PutKV(ctx, &store.KV{Bucket: bucketUsers, Key: name, Value: b, Version: u.version})
		if fhir.IsKind(err, fhir.EConflict) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return u, nil
	}
	return nil, fhir.Errorf(fhir.EConflict, "", "user %q is changing too often to update", name)
}

// AddRole gives a user one more role.
func (d *Directory) AddRole(ctx context.Context, name string, a Assignment) (*User, error) {
	a.Org = strings.ToUpper(a.Org)
	return d.UpdateUser(ctx, name, func(u *User) error {
		if slices.ContainsFunc(u.Roles, a.Same) {
			return exists("role", a.String())
		}
		u.Roles = append(u.Roles, a)
		return nil
	})
}

// RemoveRole takes a role away from a user.
func (d *Directory) RemoveRole(ctx context.Context, name string, a Assignment) (*User, error) {
	a.Org = strings.ToUpper(a.Org)
	return d.UpdateUser(ctx, name, func(u *User) error {
		i := slices.IndexFunc(u.Roles, a.Same)
		if i < 0 {
			return notFound("role", a.String())
		}
		u.Roles = slices.Delete(u.Roles, i, i+1)
		return nil
	})
}

// ParseAssignment reads "ORG:role" or "role:Patient/id" (or
// "proxy:Patient/id" with ",RelatedPerson/x" appended for the proxy's own
// resource).
func ParseAssignment(s string) (Assignment, error) {
	left, right, ok := strings.Cut(s, ":")
	if !ok {
		return Assignment{}, fhir.Invalid("", "role %q must be ORG:role or patient:Patient/ID or proxy:Patient/ID[,RelatedPerson/ID]", s)
	}
	if left == RolePatient || left == RoleProxy {
		pat, fu, _ := strings.Cut(right, ",")
		id, ok := strings.CutPrefix(pat, "Patient/")
		if !ok {
			return Assignment{}, fhir.Invalid("", "role %q must name Patient/ID", s)
		}
		a := Assignment{Role: left, Patient: id, FHIRUser: fu}
		if left == RolePatient && fu == "" {
			a.FHIRUser = "Patient/" + id
		}
		return a, nil
	}
	return Assignment{Org: strings.ToUpper(left), Role: right}, nil
}

// --- clients ---

// CreateClient registers a client; EConflict if its id is taken.
func (d *Directory) CreateClient(ctx context.Context, c *Client) error {
	if err := d.checkClient(ctx, c); err != nil {
		return err
	}
	if c.Created.IsZero() {
		c.Created = time.Now().UTC()
	}
	return d.create(ctx, bucketClients, c.ID, c, "client")
}

func (d *Directory) checkClient(ctx context.Context, c *Client) error {
	if !validClientID(c.ID) {
		return fhir.Invalid("", "client id %q must be 1 to 64 of letters, digits, '.', '_' and '-'", c.ID)
	}
	switch c.Type {
	case Public, Confidential:
		if len(c.RedirectURIs) == 0 {
			return fhir.Invalid("", "a %s client needs at least one redirect URI", c.Type)
		}
		for _, u := range c.RedirectURIs {
			if err := checkRedirect(u); err != nil {
				return err
			}
		}
		if c.Org != "" {
			return fhir.Invalid("", "a user-facing app acts for its user's organisation, not its own")
		}
	case System:
		if len(c.RedirectURIs) != 0 {
			return fhir.Invalid("", "a system client has no redirect URIs")
		}
		if _, err := d.Org(ctx, c.Org); err != nil {
			if fhir.IsKind(err, fhir.ENotFound) {
				return fhir.Invalid("", "a system client needs a registered organisation (--org); %q is not one", c.Org)
			}
			return err
		}
	default:
		return fhir.Invalid("", "client type %q is not public, confidential or system", c.Type)
	}
	if c.Type != Public {
		if (len(c.JWKS) == 0) == (c.JWKSURL == "") {
			return fhir.Invalid("", "a %s client needs either registered keys (a JWK Set) or a JWKS URL, not both", c.Type)
		}
		if len(c.JWKS) > 0 && !json.Valid(c.JWKS) {
			return fhir.Invalid("", "the client's JWK Set is not JSON")
		}
		if c.JWKSURL != "" {
			if err := checkJWKSURL(c.JWKSURL); err != nil {
				return err
			}
		}
	} else if len(c.JWKS) > 0 || c.JWKSURL != "" {
		return fhir.Invalid("", "a public client has no keys")
	}
	if len(c.Scopes) == 0 {
		return fhir.Invalid("", "a client needs its maximum scopes")
	}
	for _, s := range c.Scopes {
		if !validScopeFor(c.Type, s) {
			return fhir.Invalid("", "scope %q is not a valid scope for a %s client", s, c.Type)
		}
	}
	return nil
}

// Client returns the client with id id.
func (d *Directory) Client(ctx context.Context, id string) (*Client, error) {
	var c Client
	if _, err := d.get(ctx, bucketClients, id, &c, "client"); err != nil {
		return nil, err
	}
	return &c, nil
}

// Clients lists every client by id.
func (d *Directory) Clients(ctx context.Context) ([]*Client, error) {
	return list[Client](ctx, d, bucketClients)
}

// --- storage ---

func (d *Directory) create(ctx context.Context, bucket, key string, v any, what string) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fhir.Internal(err)
	}
	created, err := d.kv.PutKVIfAbsent(ctx, &store.KV{Bucket: bucket, Key: key, Value: b})
	if err != nil {
		return err
	}
	if !created {
		return exists(what, key)
	}
	return nil
}

func (d *Directory) get(ctx context.Context, bucket, key string, v any, what string) (int64, error) {
	if key == "" {
		return 0, notFound(what, key)
	}
	e, err := d.kv.KV(ctx, bucket, key)
	if fhir.IsKind(err, fhir.ENotFound) {
		return 0, notFound(what, key)
	}
	if err != nil {
		return 0, err
	}
	if err := json.Unmarshal(e.Value, v); err != nil {
		return 0, fhir.Internal(fmt.Errorf("directory: %s %q: %w", what, key, err))
	}
	return e.Version, nil
}

func list[T any](ctx context.Context, d *Directory, bucket string) ([]*T, error) {
	es, err := d.kv.ListKV(ctx, bucket, "")
	if err != nil {
		return nil, err
	}
	out := make([]*T, 0, len(es))
	for _, e := range es {
		v := new(T)
		if err := json.Unmarshal(e.Value, v); err != nil {
			return nil, fhir.Internal(fmt.Errorf("directory: %s %q: %w", bucket, e.Key, err))
		}
		out = append(out, v)
	}
	return out, nil
}

// validScopeFor reports whether a client of type t may have scope s in its
// maximum: system clients only system/ scopes; user-facing apps patient/
// and user/ scopes and the launch, identity and refresh scopes.
func validScopeFor(t ClientType, s string) bool {
	if rs, ok := auth.ParseResourceScope(s); ok {
		if t == System {
			return rs.Context == "system"
		}
		return rs.Context != "system"
	}
	return t != System && auth.ValidScope(s)
}

// checkRedirect accepts what OAuth 2.0 for native and browser apps
// (RFC 8252, RFC 9700) allows: https, http only on the loopback interface,
// or an app's private-use scheme (reverse domain name, so with a dot); an
// absolute URI without a fragment.
func checkRedirect(s string) error {
	u, err := url.Parse(s)
	if err != nil || !u.IsAbs() || u.Fragment != "" || len(s) > 2000 {
		return fhir.Invalid("", "redirect URI %q must be absolute and have no fragment", s)
	}
	switch {
	case u.Scheme == "https" && u.Host != "":
	case u.Scheme == "http" && isLoopback(u.Hostname()):
	case strings.Contains(u.Scheme, ".") && u.Scheme != "http" && u.Scheme != "https":
	default:
		return fhir.Invalid("", "redirect URI %q must be https, http on 127.0.0.1 or localhost, or an app scheme such as com.example.app:/callback", s)
	}
	return nil
}

// checkJWKSURL accepts https URLs, and http on the loopback interface (for
// a client on the same host, and tests).
func checkJWKSURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.Fragment != "" || !(u.Scheme == "https" || u.Scheme == "http" && isLoopback(u.Hostname())) {
		return fhir.Invalid("", "JWKS URL %q must be https (or http on 127.0.0.1)", s)
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ValidODS reports whether s has the shape of an ODS organisation code:
// 3 to 10 upper-case letters and digits.
func ValidODS(s string) bool {
	if len(s) < 3 || len(s) > 10 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-' || c == '@') {
			return false
		}
	}
	return true
}

func validClientID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
