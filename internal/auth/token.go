package auth

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/sharedcare/sharedcare/internal/fhir"
)

// SigningKeyName is the node secret (store.Store.Secret) holding the seed of
// the node's token-signing key. Every process sharing the store signs and
// verifies with the same key, so a token minted by "admin-token" is
// accepted by "serve".
const SigningKeyName = "token-signing-key"

// MaxTTL is the longest lifetime the node gives a token (issue 2: ≤ 1 h;
// issue 6 keeps users at ≤ 1 h and shortens system tokens to 5 min).
const MaxTTL = time.Hour

// Leeway is the clock skew tolerated on exp, nbf and iat.
const Leeway = 30 * time.Second

// algorithm is the one signature algorithm the node signs with and the only
// one it accepts: pinning it refuses "alg: none", HS256 signed with the
// public key and every other algorithm substitution.
const algorithm = jose.EdDSA

// SecretStore is where the node keeps its signing key; store.Store
// implements it.
type SecretStore interface {
	Secret(ctx context.Context, name string, generate func() ([]byte, error)) ([]byte, error)
}

// Authority issues and verifies the node's own access tokens.
type Authority struct {
	issuer string // iss and aud: the FHIR base URL of the node
	kid    string
	key    ed25519.PrivateKey
	signer jose.Signer
	// keys are the public keys accepted, by kid. One today; a rotation
	// (issue 6) adds the next key here before signing with it.
	keys map[string]ed25519.PublicKey
	now  func() time.Time
	// store is where Load found the key (nil after New).
	store SecretStore

	mu    sync.RWMutex
	cache map[[32]byte]*Principal
}

// maxCache bounds the verified-token cache. Only tokens that verified are
// cached, so its size is the number of live tokens, not attacker-chosen.
const maxCache = 10000

// Load returns the Authority of the node whose secrets are in st, creating
// the signing key on first use. issuer is the node's FHIR base URL.
func Load(ctx context.Context, st SecretStore, issuer string) (*Authority, error) {
	seed, err := st.Secret(ctx, SigningKeyName, func() ([]byte, error) {
		seed := make([]byte, ed25519.SeedSize)
		_, err := rand.Read(seed)
		return seed, err
	})
	if err != nil {
		return nil, err
	}
	if len(seed) != ed25519.SeedSize {
		return nil, fhir.Internal(fmt.Errorf("auth: secret %q holds %d bytes, want an Ed25519 seed of %d", SigningKeyName, len(seed), ed25519.SeedSize))
	}
	a, err := New(ed25519.NewKeyFromSeed(seed), issuer)
	if err != nil {
		return nil, err
	}
	a.store = st
	return a, nil
}

// New returns an Authority signing with key for issuer (the node's FHIR
// base URL, used as both iss and aud).
func New(key ed25519.PrivateKey, issuer string) (*Authority, error) {
	pub := key.Public().(ed25519.PublicKey)
	sum := sha256.Sum256(pub)
	kid := base64.RawURLEncoding.EncodeToString(sum[:12])
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: algorithm, Key: jose.JSONWebKey{Key: key, KeyID: kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return nil, fhir.Internal(fmt.Errorf("auth: signer: %w", err))
	}
	return &Authority{
		issuer: issuer,
		kid:    kid,
		key:    key,
		signer: signer,
		keys:   map[string]ed25519.PublicKey{kid: pub},
		now:    time.Now,
		cache:  make(map[[32]byte]*Principal),
	}, nil
}

// SetClock replaces the clock (for tests of expiry).
func (a *Authority) SetClock(now func() time.Time) {
	a.mu.Lock()
	a.now = now
	a.cache = make(map[[32]byte]*Principal)
	a.mu.Unlock()
}

// Issuer returns the iss (and aud) of the node's tokens.
func (a *Authority) Issuer() string { return a.issuer }

// claims is the payload of a node token. Org and Role are carried now so
// that issue 6's user tokens need no new format.
type claims struct {
	jwt.Claims
	Scope    string `json:"scope,omitempty"`
	Kind     Kind   `json:"kind"`
	Org      string `json:"org,omitempty"`
	OrgType  string `json:"org_type,omitempty"`
	Role     string `json:"role,omitempty"`
	Client   string `json:"client_id,omitempty"`
	Patient  string `json:"patient,omitempty"`
	FHIRUser string `json:"fhirUser,omitempty"`
	Session  string `json:"sid,omitempty"`
	User     string `json:"user,omitempty"`
}

// Issue signs a token for p (its Subject, Kind, Scopes, organisation,
// Role, Client, Patient, FHIRUser and Session) valid for ttl, at most
// MaxTTL. It returns the compact JWT.
func (a *Authority) Issue(p Principal, ttl time.Duration) (string, error) {
	tok, _, err := a.IssueToken(p, ttl)
	return tok, err
}

// IssueToken is Issue that also returns the principal as the token carries
// it: with its new TokenID, IssuedAt and Expires.
func (a *Authority) IssueToken(p Principal, ttl time.Duration) (string, *Principal, error) {
	if ttl <= 0 || ttl > MaxTTL {
		return "", nil, fhir.Invalid("", "token lifetime %s must be more than 0 and at most %s", ttl, MaxTTL)
	}
	if p.Subject == "" || !p.Kind.Valid() {
		return "", nil, fhir.Invalid("", "a token needs a subject and a known kind")
	}
	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		return "", nil, fhir.Internal(err)
	}
	a.mu.RLock()
	now := a.now()
	a.mu.RUnlock()
	c := claims{
		Claims: jwt.Claims{
			Issuer:   a.issuer,
			Audience: jwt.Audience{a.issuer},
			Subject:  p.Subject,
			IssuedAt: jwt.NewNumericDate(now),
			Expiry:   jwt.NewNumericDate(now.Add(ttl)),
			ID:       base64.RawURLEncoding.EncodeToString(jti),
		},
		Scope:    ScopeString(p.Scopes),
		Kind:     p.Kind,
		Org:      p.Organisation,
		OrgType:  p.OrganisationType,
		Role:     p.Role,
		Client:   p.Client,
		Patient:  p.Patient,
		FHIRUser: p.FHIRUser,
		Session:  p.Session,
		User:     p.User,
	}
	tok, err := jwt.Signed(a.signer).Claims(c).Serialize()
	if err != nil {
		return "", nil, fhir.Internal(fmt.Errorf("auth: sign: %w", err))
	}
	p.Scopes = slices.Clone(p.Scopes)
	p.TokenID = c.ID
	p.IssuedAt = c.IssuedAt.Time()
	p.Expires = c.Expiry.Time()
	return tok, &p, nil
}

// Now is the Authority's clock (SetClock changes it in tests).
func (a *Authority) Now() time.Time {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.now()
}

// Store returns the store Load read the signing key from, nil for an
// Authority made by New. The SMART server (package smart) keeps its
// accounts and tokens in the same store.
func (a *Authority) Store() SecretStore { return a.store }

// JWKS is the public half of the node's signing keys as a JSON Web Key Set,
// for resource servers that verify the node's tokens themselves.
func (a *Authority) JWKS() jose.JSONWebKeySet {
	var set jose.JSONWebKeySet
	for kid, pub := range a.keys {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: pub, KeyID: kid, Algorithm: string(algorithm), Use: "sig"})
	}
	return set
}

// IssueAdmin signs the node operator's full-access token.
func (a *Authority) IssueAdmin(ttl time.Duration) (string, error) {
	return a.Issue(Principal{Subject: "admin", Kind: KindAdmin, Scopes: []string{FullAccessScope}}, ttl)
}

func unauthorized(format string, args ...any) error {
	return fhir.Errorf(fhir.EUnauthorized, "", format, args...)
}

// Verify checks a compact JWT and returns its principal. It refuses, with
// EUnauthorized: an empty or malformed token, any algorithm but the node's
// (so "none" too), an unknown kid, a bad signature, a wrong issuer or
// audience, a token without exp or iat, an expired or not-yet-valid token
// and one whose lifetime exceeds MaxTTL.
//
// Verified tokens are cached by their SHA-256 until they expire: an Ed25519
// verification costs tens of microseconds, the lookup well under one, and
// read-by-id must stay fast. When issue 6 adds revocation, the revocation
// check comes after the cache lookup, so it still applies to every request.
func (a *Authority) Verify(ctx context.Context, token string) (*Principal, error) {
	if token == "" {
		return nil, unauthorized("missing access token")
	}
	if len(token) > 8192 {
		return nil, unauthorized("access token is too long")
	}
	sum := sha256.Sum256([]byte(token))
	a.mu.RLock()
	now := a.now()
	p, hit := a.cache[sum]
	a.mu.RUnlock()
	if hit {
		if now.After(p.Expires.Add(Leeway)) {
			return nil, unauthorized("access token has expired")
		}
		return p, nil
	}
	p, err := a.verify(token, now)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	if len(a.cache) >= maxCache {
		for k, v := range a.cache {
			if now.After(v.Expires.Add(Leeway)) {
				delete(a.cache, k)
			}
		}
		if len(a.cache) >= maxCache {
			clear(a.cache)
		}
	}
	a.cache[sum] = p
	a.mu.Unlock()
	return p, nil
}

func (a *Authority) verify(token string, now time.Time) (*Principal, error) {
	tok, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{algorithm})
	if err != nil {
		if strings.Contains(err.Error(), "unexpected signature algorithm") {
			return nil, unauthorized("access token is not signed with %s", algorithm)
		}
		return nil, unauthorized("access token is malformed")
	}
	if len(tok.Headers) != 1 {
		return nil, unauthorized("access token is malformed")
	}
	pub, ok := a.keys[tok.Headers[0].KeyID]
	if !ok {
		return nil, unauthorized("access token is signed by an unknown key")
	}
	var c claims
	if err := tok.Claims(pub, &c); err != nil {
		return nil, unauthorized("access token signature is invalid")
	}
	if c.Expiry == nil || c.IssuedAt == nil {
		return nil, unauthorized("access token lacks exp or iat")
	}
	if err := c.Claims.ValidateWithLeeway(jwt.Expected{Issuer: a.issuer, AnyAudience: jwt.Audience{a.issuer}, Time: now}, Leeway); err != nil {
		switch {
		case errors.Is(err, jwt.ErrExpired):
			return nil, unauthorized("access token has expired")
		case errors.Is(err, jwt.ErrNotValidYet), errors.Is(err, jwt.ErrIssuedInTheFuture):
			return nil, unauthorized("access token is not valid yet")
		case errors.Is(err, jwt.ErrInvalidIssuer):
			return nil, unauthorized("access token was issued by another server")
		case errors.Is(err, jwt.ErrInvalidAudience):
			return nil, unauthorized("access token is meant for another server")
		}
		return nil, unauthorized("access token is invalid")
	}
	if c.Expiry.Time().Sub(c.IssuedAt.Time()) > MaxTTL {
		return nil, unauthorized("access token lives longer than %s", MaxTTL)
	}
	if c.Subject == "" || !c.Kind.Valid() {
		return nil, unauthorized("access token lacks a subject or kind")
	}
	var scopes []string
	if c.Scope != "" {
		scopes = strings.Fields(c.Scope)
	}
	return &Principal{
		Subject:          c.Subject,
		Kind:             c.Kind,
		Scopes:           scopes,
		Organisation:     c.Org,
		OrganisationType: c.OrgType,
		Role:             c.Role,
		Client:           c.Client,
		Patient:          c.Patient,
		FHIRUser:         c.FHIRUser,
		Session:          c.Session,
		User:             c.User,
		TokenID:          c.ID,
		IssuedAt:         c.IssuedAt.Time(),
		Expires:          c.Expiry.Time(),
	}, nil
}
