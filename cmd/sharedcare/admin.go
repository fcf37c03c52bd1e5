package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"golang.org/x/term"

	"github.com/sharedcare/sharedcare/internal/auth"
	"github.com/sharedcare/sharedcare/internal/auth/smart"
	"github.com/sharedcare/sharedcare/internal/config"
	"github.com/sharedcare/sharedcare/internal/directory"
	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/store"
	"github.com/sharedcare/sharedcare/internal/store/backend"
)

// "sharedcare admin org|user|client|role ..." manages the directory the
// authorisation server authenticates against. It opens the same store as
// serve (--data or --db), so a running server sees the changes on the next
// login or token request.

// The streams of the admin command (tests replace them).
var (
	adminIn  io.Reader = os.Stdin
	adminOut io.Writer = os.Stdout
)

const adminUsage = `usage: sharedcare admin <org|user|client|role> <action> [flags]

  org create --ods CODE --type TYPE [--name NAME]
  org import [flags] FILE          organisations.csv of a generated region (ods,type,name)
  org list
  user create --name NAME [--display TEXT] [--role ORG:role|patient:Patient/ID|proxy:Patient/ID[,RelatedPerson/ID]]... [--totp]
                                   the password is read from standard input (prompted on a terminal)
  user list
  user password --name NAME        set a new password (read from standard input) and end the user's tokens
  user totp --name NAME [--off]    enrol a new TOTP secret (printed once), or remove the second factor
  user unlock --name NAME          clear failed logins and the lock they caused
  user disable --name NAME         refuse logins and end the user's tokens
  user enable --name NAME
  client create --id ID --type public|confidential|system --scope "SCOPES" [--name NAME]
                [--redirect-uri URI]... [--jwks FILE | --jwks-url URL] [--org ODS]
  client list
  role add --user NAME --role ORG:role [--fhir-user Practitioner/ID]
  role remove --user NAME --role ORG:role
  role list [--user NAME]
  oidc set --issuer URL --client-id ID --client-secret-file FILE [--name TEXT]
           [--user-claim preferred_username] [--org-claim ods] [--role-claim role]
                                   offer login through an external OpenID Connect provider
  oidc show | oidc remove

Every action also takes --data DIR or --db URL (or SHAREDCARE_DATA / SHAREDCARE_DB).`

// runAdmin is "sharedcare admin".
func runAdmin(ctx context.Context, args []string) error {
	if len(args) < 2 {
		if len(args) == 1 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			fmt.Fprintln(adminOut, adminUsage)
			return flag.ErrHelp
		}
		return usageError{errors.New("say what to manage and how\n" + adminUsage)}
	}
	what, action := args[0], args[1]
	run, ok := adminActions[what+" "+action]
	if !ok {
		return usageError{fmt.Errorf("unknown action %q\n%s", what+" "+action, adminUsage)}
	}
	return run(ctx, args[2:])
}

// adminActions are the actions by "thing action".
var adminActions = map[string]func(context.Context, []string) error{
	"org create":    adminOrgCreate,
	"org import":    adminOrgImport,
	"org list":      adminOrgList,
	"user create":   adminUserCreate,
	"user list":     adminUserList,
	"user unlock":   adminUserUnlock,
	"user password": adminUserPassword,
	"user totp":     adminUserTOTP,
	"user disable":  func(ctx context.Context, a []string) error { return adminUserDisable(ctx, a, true) },
	"user enable":   func(ctx context.Context, a []string) error { return adminUserDisable(ctx, a, false) },
	"client create": adminClientCreate,
	"client list":   adminClientList,
	"role add":      func(ctx context.Context, a []string) error { return adminRole(ctx, a, true) },
	"role remove":   func(ctx context.Context, a []string) error { return adminRole(ctx, a, false) },
	"role list":     adminRoleList,
	"oidc set":      adminOIDCSet,
	"oidc show":     adminOIDCShow,
	"oidc remove":   adminOIDCRemove,
}

// adminStore parses the store flags (and those define adds) and opens the
// store. The caller closes it.
func adminStore(ctx context.Context, name string, args []string, define func(*flag.FlagSet)) (store.Store, config.Config, *flag.FlagSet, error) {
	fs := flag.NewFlagSet("admin "+name, flag.ContinueOnError)
	if define != nil {
		define(fs)
	}
	cfg, err := config.Load(fs, args, os.Getenv, []string{"data", "db", "addr", "base-url"})
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, cfg, nil, err
		}
		return nil, cfg, nil, usageError{err}
	}
	st, err := backend.Open(ctx, cfg.DataDir, cfg.DBURL)
	if err != nil {
		return nil, cfg, nil, fmt.Errorf("open store (%s): %w", storeName(cfg), err)
	}
	return st, cfg, fs, nil
}

// listFlag collects a repeated flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func noArgs(fs *flag.FlagSet) error {
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments: %v", fs.Args())}
	}
	return nil
}

func table(header string, rows [][]string) error {
	w := tabwriter.NewWriter(adminOut, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, header)
	for _, r := range rows {
		fmt.Fprintln(w, strings.Join(r, "\t"))
	}
	return w.Flush()
}

func adminOrgCreate(ctx context.Context, args []string) error {
	var o directory.Organisation
	st, _, fs, err := adminStore(ctx, "org create", args, func(fs *flag.FlagSet) {
		fs.StringVar(&o.ODS, "ods", "", "ODS code")
		fs.StringVar(&o.Type, "type", "", "organisation type (gp-practice, acute-trust, ...)")
		fs.StringVar(&o.Name, "name", "", "display name")
	})
	if err != nil {
		return err
	}
	defer st.Close()
	if err := noArgs(fs); err != nil {
		return err
	}
	if err := directory.New(st).CreateOrg(ctx, o); err != nil {
		return err
	}
	fmt.Fprintf(adminOut, "organisation %s created\n", strings.ToUpper(o.ODS))
	return nil
}

// adminOrgImport reads a region's organisations.csv (docs/DATA.md: ods,
// type, name), skipping organisations already registered.
func adminOrgImport(ctx context.Context, args []string) error {
	st, _, fs, err := adminStore(ctx, "org import", args, nil)
	if err != nil {
		return err
	}
	defer st.Close()
	if fs.NArg() != 1 {
		return usageError{errors.New("give one organisations.csv")}
	}
	f, err := os.Open(fs.Arg(0))
	if err != nil {
		return err
	}
	defer f.Close()
	r := csv.NewReader(f)
	head, err := r.Read()
	if err != nil {
		return fmt.Errorf("%s: %w", fs.Arg(0), err)
	}
	col := map[string]int{}
	for i, h := range head {
		col[strings.TrimSpace(h)] = i
	}
	for _, h := range []string{"ods", "type", "name"} {
		if _, ok := col[h]; !ok {
			return fmt.Errorf("%s: no %q column", fs.Arg(0), h)
		}
	}
	dir := directory.New(st)
	created, skipped := 0, 0
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%s: %w", fs.Arg(0), err)
		}
		err = dir.CreateOrg(ctx, directory.Organisation{ODS: rec[col["ods"]], Type: rec[col["type"]], Name: rec[col["name"]]})
		switch {
		case fhir.IsKind(err, fhir.EConflict):
			skipped++
		case err != nil:
			return fmt.Errorf("%s: %s: %w", fs.Arg(0), rec[col["ods"]], err)
		default:
			created++
		}
	}
	fmt.Fprintf(adminOut, "%d organisations created, %d already registered\n", created, skipped)
	return nil
}

func adminOrgList(ctx context.Context, args []string) error {
	st, _, fs, err := adminStore(ctx, "org list", args, nil)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := noArgs(fs); err != nil {
		return err
	}
	orgs, err := directory.New(st).Orgs(ctx)
	if err != nil {
		return err
	}
	var rows [][]string
	for _, o := range orgs {
		rows = append(rows, []string{o.ODS, o.Type, o.Name})
	}
	return table("ODS\tTYPE\tNAME", rows)
}

// readPassword reads a new password: prompted twice without echo on a
// terminal, else the first line of standard input (for scripts).
func readPassword() (string, error) {
	if f, ok := adminIn.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(os.Stderr, "password: ")
		a, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(os.Stderr)
		if err != nil {
			return "", err
		}
		fmt.Fprint(os.Stderr, "again: ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(os.Stderr)
		if err != nil {
			return "", err
		}
		if string(a) != string(b) {
			return "", errors.New("the passwords differ")
		}
		return string(a), nil
	}
	line, err := bufio.NewReader(io.LimitReader(adminIn, 4096)).ReadString('\n')
	if err != nil && err != io.EOF {
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}

func adminUserCreate(ctx context.Context, args []string) error {
	var u directory.User
	var roles listFlag
	var withTOTP bool
	st, cfg, fs, err := adminStore(ctx, "user create", args, func(fs *flag.FlagSet) {
		fs.StringVar(&u.Name, "name", "", "login name")
		fs.StringVar(&u.Display, "display", "", "display name")
		fs.Var(&roles, "role", "a role: ORG:role, patient:Patient/ID or proxy:Patient/ID[,RelatedPerson/ID] (repeatable)")
		fs.BoolVar(&withTOTP, "totp", false, "require a TOTP code at login and print the secret to enrol")
	})
	if err != nil {
		return err
	}
	defer st.Close()
	if err := noArgs(fs); err != nil {
		return err
	}
	for _, r := range roles {
		a, err := directory.ParseAssignment(r)
		if err != nil {
			return usageError{err}
		}
		u.Roles = append(u.Roles, a)
	}
	pw, err := readPassword()
	if err != nil {
		return err
	}
	if u.PasswordHash, err = auth.HashPassword(pw); err != nil {
		return err
	}
	if withTOTP {
		if u.TOTPSecret, err = auth.NewTOTPSecret(); err != nil {
			return err
		}
	}
	if err := directory.New(st).CreateUser(ctx, &u); err != nil {
		return err
	}
	fmt.Fprintf(adminOut, "user %s created\n", u.Name)
	if withTOTP {
		// Shown once, to the administrator enrolling the user's
		// authenticator; it is never printed again.
		fmt.Fprintf(adminOut, "TOTP secret: %s\n%s\n", u.TOTPSecret, auth.TOTPURI("sharedcare "+cfg.BaseURL, u.Name, u.TOTPSecret))
	}
	return nil
}

func adminUserList(ctx context.Context, args []string) error {
	st, _, fs, err := adminStore(ctx, "user list", args, nil)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := noArgs(fs); err != nil {
		return err
	}
	users, err := directory.New(st).Users(ctx)
	if err != nil {
		return err
	}
	var rows [][]string
	for _, u := range users {
		var roles []string
		for _, r := range u.Roles {
			roles = append(roles, r.String())
		}
		state := "active"
		if u.Disabled {
			state = "disabled"
		}
		totp := "no"
		if u.TOTPSecret != "" {
			totp = "yes"
		}
		rows = append(rows, []string{u.Name, state, totp, strings.Join(roles, " "), u.Display})
	}
	return table("NAME\tSTATE\tTOTP\tROLES\tDISPLAY", rows)
}

// adminServer builds the authorisation server over st, for the actions
// that change its state (locks, revocations).
func adminServer(ctx context.Context, st store.Store, cfg config.Config) (*smart.Server, error) {
	a, err := auth.Load(ctx, st, cfg.BaseURL)
	if err != nil {
		return nil, err
	}
	return smart.New(a, st, smart.Config{BaseURL: cfg.BaseURL})
}

func adminUserUnlock(ctx context.Context, args []string) error {
	var name string
	st, cfg, fs, err := adminStore(ctx, "user unlock", args, func(fs *flag.FlagSet) { fs.StringVar(&name, "name", "", "login name") })
	if err != nil {
		return err
	}
	defer st.Close()
	if err := noArgs(fs); err != nil {
		return err
	}
	if _, err := directory.New(st).User(ctx, name); err != nil {
		return err
	}
	srv, err := adminServer(ctx, st, cfg)
	if err != nil {
		return err
	}
	if err := srv.Unlock(ctx, name); err != nil {
		return err
	}
	fmt.Fprintf(adminOut, "user %s unlocked\n", name)
	return nil
}

func adminUserDisable(ctx context.Context, args []string, disable bool) error {
	var name string
	st, cfg, fs, err := adminStore(ctx, "user disable", args, func(fs *flag.FlagSet) { fs.StringVar(&name, "name", "", "login name") })
	if err != nil {
		return err
	}
	defer st.Close()
	if err := noArgs(fs); err != nil {
		return err
	}
	if _, err := directory.New(st).UpdateUser(ctx, name, func(u *directory.User) error { u.Disabled = disable; return nil }); err != nil {
		return err
	}
	if disable {
		// Refresh and code exchange check the account; the access tokens
		// already out are revoked here.
		srv, err := adminServer(ctx, st, cfg)
		if err != nil {
			return err
		}
		if err := srv.RevokeSubject(ctx, auth.KindUser, name); err != nil {
			return err
		}
		fmt.Fprintf(adminOut, "user %s disabled and their tokens revoked\n", name)
		return nil
	}
	fmt.Fprintf(adminOut, "user %s enabled\n", name)
	return nil
}

func adminClientCreate(ctx context.Context, args []string) error {
	var c directory.Client
	var typ, scopes, jwksFile string
	var redirects listFlag
	st, _, fs, err := adminStore(ctx, "client create", args, func(fs *flag.FlagSet) {
		fs.StringVar(&c.ID, "id", "", "client_id")
		fs.StringVar(&c.Name, "name", "", "display name shown on the login page")
		fs.StringVar(&typ, "type", "", "public (browser or mobile app), confidential (app with a server and keys) or system (Backend Services)")
		fs.StringVar(&scopes, "scope", "", "the most the client may be granted, space-separated SMART scopes")
		fs.Var(&redirects, "redirect-uri", "a redirect URI (repeatable; user-facing apps)")
		fs.StringVar(&jwksFile, "jwks", "", "file holding the client's public keys as a JWK Set")
		fs.StringVar(&c.JWKSURL, "jwks-url", "", "URL where the client publishes its JWK Set")
		fs.StringVar(&c.Org, "org", "", "ODS code of the organisation a system client feeds for")
	})
	if err != nil {
		return err
	}
	defer st.Close()
	if err := noArgs(fs); err != nil {
		return err
	}
	c.Type = directory.ClientType(typ)
	c.Scopes = strings.Fields(scopes)
	c.RedirectURIs = redirects
	c.Org = strings.ToUpper(c.Org)
	if jwksFile != "" {
		b, err := os.ReadFile(jwksFile)
		if err != nil {
			return err
		}
		var set struct {
			Keys []json.RawMessage `json:"keys"`
		}
		if err := json.Unmarshal(b, &set); err != nil || len(set.Keys) == 0 {
			return fmt.Errorf("%s is not a JWK Set with keys", jwksFile)
		}
		if strings.Contains(string(b), `"d"`) {
			// A private key has no business in the server's store.
			return fmt.Errorf("%s holds a private key (\"d\"): register the public keys only", jwksFile)
		}
		c.JWKS = b
	}
	if err := directory.New(st).CreateClient(ctx, &c); err != nil {
		return err
	}
	fmt.Fprintf(adminOut, "client %s (%s) created\n", c.ID, c.Type)
	return nil
}

func adminClientList(ctx context.Context, args []string) error {
	st, _, fs, err := adminStore(ctx, "client list", args, nil)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := noArgs(fs); err != nil {
		return err
	}
	clients, err := directory.New(st).Clients(ctx)
	if err != nil {
		return err
	}
	var rows [][]string
	for _, c := range clients {
		keys := "-"
		switch {
		case c.JWKSURL != "":
			keys = c.JWKSURL
		case len(c.JWKS) > 0:
			keys = "registered"
		}
		rows = append(rows, []string{c.ID, string(c.Type), orDash(c.Org), strings.Join(c.Scopes, " "), strings.Join(c.RedirectURIs, " "), keys})
	}
	return table("ID\tTYPE\tORG\tSCOPES\tREDIRECT URIS\tKEYS", rows)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func adminRole(ctx context.Context, args []string, add bool) error {
	var user, role, fhirUser string
	st, cfg, fs, err := adminStore(ctx, "role", args, func(fs *flag.FlagSet) {
		fs.StringVar(&user, "user", "", "login name")
		fs.StringVar(&role, "role", "", "ORG:role, patient:Patient/ID or proxy:Patient/ID[,RelatedPerson/ID]")
		if add {
			fs.StringVar(&fhirUser, "fhir-user", "", "the FHIR resource the user is in this role (Practitioner/ID)")
		}
	})
	if err != nil {
		return err
	}
	defer st.Close()
	if err := noArgs(fs); err != nil {
		return err
	}
	a, err := directory.ParseAssignment(role)
	if err != nil {
		return usageError{err}
	}
	if fhirUser != "" {
		a.FHIRUser = fhirUser
	}
	dir := directory.New(st)
	if add {
		if _, err := dir.AddRole(ctx, user, a); err != nil {
			return err
		}
		fmt.Fprintf(adminOut, "user %s now holds %s\n", user, a)
		return nil
	}
	if _, err := dir.RemoveRole(ctx, user, a); err != nil {
		return err
	}
	// A session in the removed role must not outlive it: refreshes check
	// the role, and the access tokens out are revoked here.
	srv, err := adminServer(ctx, st, cfg)
	if err != nil {
		return err
	}
	if err := srv.RevokeSubject(ctx, auth.KindUser, user); err != nil {
		return err
	}
	fmt.Fprintf(adminOut, "user %s no longer holds %s; their tokens are revoked\n", user, a)
	return nil
}

func adminRoleList(ctx context.Context, args []string) error {
	var only string
	st, _, fs, err := adminStore(ctx, "role list", args, func(fs *flag.FlagSet) { fs.StringVar(&only, "user", "", "only this user") })
	if err != nil {
		return err
	}
	defer st.Close()
	if err := noArgs(fs); err != nil {
		return err
	}
	users, err := directory.New(st).Users(ctx)
	if err != nil {
		return err
	}
	var rows [][]string
	for _, u := range users {
		if only != "" && u.Name != only {
			continue
		}
		for _, r := range u.Roles {
			rows = append(rows, []string{u.Name, r.Role, orDash(r.Org), orDash(r.Patient), orDash(r.FHIRUser)})
		}
	}
	return table("USER\tROLE\tORG\tPATIENT\tFHIR USER", rows)
}

func adminUserPassword(ctx context.Context, args []string) error {
	var name string
	st, cfg, fs, err := adminStore(ctx, "user password", args, func(fs *flag.FlagSet) { fs.StringVar(&name, "name", "", "login name") })
	if err != nil {
		return err
	}
	defer st.Close()
	if err := noArgs(fs); err != nil {
		return err
	}
	if _, err := directory.New(st).User(ctx, name); err != nil {
		return err
	}
	pw, err := readPassword()
	if err != nil {
		return err
	}
	hash, err := auth.HashPassword(pw)
	if err != nil {
		return err
	}
	if _, err := directory.New(st).UpdateUser(ctx, name, func(u *directory.User) error { u.PasswordHash = hash; return nil }); err != nil {
		return err
	}
	// A new password usually means the old one is suspect: sessions made
	// with it end now, and a lock from guessing it is lifted.
	srv, err := adminServer(ctx, st, cfg)
	if err != nil {
		return err
	}
	if err := srv.RevokeSubject(ctx, auth.KindUser, name); err != nil {
		return err
	}
	if err := srv.Unlock(ctx, name); err != nil {
		return err
	}
	fmt.Fprintf(adminOut, "user %s has a new password; their tokens are revoked\n", name)
	return nil
}

func adminUserTOTP(ctx context.Context, args []string) error {
	var name string
	var off bool
	st, cfg, fs, err := adminStore(ctx, "user totp", args, func(fs *flag.FlagSet) {
		fs.StringVar(&name, "name", "", "login name")
		fs.BoolVar(&off, "off", false, "remove the second factor instead")
	})
	if err != nil {
		return err
	}
	defer st.Close()
	if err := noArgs(fs); err != nil {
		return err
	}
	secret := ""
	if !off {
		if secret, err = auth.NewTOTPSecret(); err != nil {
			return err
		}
	}
	if _, err := directory.New(st).UpdateUser(ctx, name, func(u *directory.User) error { u.TOTPSecret = secret; return nil }); err != nil {
		return err
	}
	if off {
		fmt.Fprintf(adminOut, "user %s logs in without a one-time code\n", name)
		return nil
	}
	fmt.Fprintf(adminOut, "TOTP secret: %s\n%s\n", secret, auth.TOTPURI("sharedcare "+cfg.BaseURL, name, secret))
	return nil
}

func adminOIDCSet(ctx context.Context, args []string) error {
	var p smart.OIDCProvider
	var secretFile string
	st, cfg, fs, err := adminStore(ctx, "oidc set", args, func(fs *flag.FlagSet) {
		fs.StringVar(&p.Issuer, "issuer", "", "the provider's issuer URL")
		fs.StringVar(&p.ClientID, "client-id", "", "this server's client id at the provider")
		fs.StringVar(&secretFile, "client-secret-file", "", "file holding this server's client secret at the provider")
		fs.StringVar(&p.Name, "name", "", "the provider's name on the login page")
		fs.StringVar(&p.UserClaim, "user-claim", "", "id_token claim holding the user name (default preferred_username)")
		fs.StringVar(&p.OrgClaim, "org-claim", "", "id_token claim holding the organisation's ODS code (default ods)")
		fs.StringVar(&p.RoleClaim, "role-claim", "", "id_token claim holding the role (default role)")
	})
	if err != nil {
		return err
	}
	defer st.Close()
	if err := noArgs(fs); err != nil {
		return err
	}
	if secretFile != "" {
		// A file, not a flag: a flag's value shows in the process list.
		b, err := os.ReadFile(secretFile)
		if err != nil {
			return err
		}
		p.ClientSecret = strings.TrimSpace(string(b))
	}
	srv, err := adminServer(ctx, st, cfg)
	if err != nil {
		return err
	}
	if err := srv.SetOIDC(ctx, &p); err != nil {
		return err
	}
	fmt.Fprintf(adminOut, "login through %s offered; register this redirect URI there: %s\n", p.Issuer, srv.OIDCCallbackURL())
	return nil
}

func adminOIDCShow(ctx context.Context, args []string) error {
	st, cfg, fs, err := adminStore(ctx, "oidc show", args, nil)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := noArgs(fs); err != nil {
		return err
	}
	srv, err := adminServer(ctx, st, cfg)
	if err != nil {
		return err
	}
	p, err := srv.OIDC(ctx)
	if err != nil {
		return err
	}
	if p == nil {
		fmt.Fprintln(adminOut, "no OpenID Connect provider is configured")
		return nil
	}
	return table("ISSUER\tCLIENT ID\tUSER CLAIM\tORG CLAIM\tROLE CLAIM\tCALLBACK", [][]string{
		{p.Issuer, p.ClientID, p.UserClaim, p.OrgClaim, p.RoleClaim, srv.OIDCCallbackURL()}})
}

func adminOIDCRemove(ctx context.Context, args []string) error {
	st, cfg, fs, err := adminStore(ctx, "oidc remove", args, nil)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := noArgs(fs); err != nil {
		return err
	}
	srv, err := adminServer(ctx, st, cfg)
	if err != nil {
		return err
	}
	if err := srv.SetOIDC(ctx, nil); err != nil {
		return err
	}
	fmt.Fprintln(adminOut, "login through an OpenID Connect provider is no longer offered")
	return nil
}
