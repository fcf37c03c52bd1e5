package smart

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/sharedcare/sharedcare/internal/auth"
	"github.com/sharedcare/sharedcare/internal/directory"
	"github.com/sharedcare/sharedcare/internal/fhir"
	"github.com/sharedcare/sharedcare/internal/store"
)

// Client authentication with private_key_jwt (RFC 7523, SMART Backend
// Services section "Authenticating to the token endpoint").

// AssertionType is the client_assertion_type of a JWT client assertion.
const AssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// assertionAlgs are the only signature algorithms a client assertion may
// use (SMART Backend Services requires RS384 and ES384). Pinning them
// refuses "alg: none", HS256 signed with a public key as the HMAC secret,
// and every other substitution before any key is looked at.
var assertionAlgs = []jose.SignatureAlgorithm{jose.RS384, jose.ES384}

// maxAssertion bounds an assertion's size.
const maxAssertion = 16 << 10

// authenticateAssertion verifies a client assertion and returns the client
// it authenticates. Every failure is invalid_client, with a description
// that says what was wrong but reveals no key material.
func (s *Server) authenticateAssertion(ctx context.Context, assertion string) (*directory.Client, *Error) {
	if assertion == "" || len(assertion) > maxAssertion {
		return nil, oauthErr("invalid_client", "client_assertion is missing or too long")
	}
	tok, err := jwt.ParseSigned(assertion, assertionAlgs)
	if err != nil {
		return nil, oauthErr("invalid_client", "client_assertion must be a JWT signed with RS384 or ES384")
	}
	if len(tok.Headers) != 1 {
		return nil, oauthErr("invalid_client", "client_assertion must have exactly one signature")
	}
	h := tok.Headers[0]
	var unverified jwt.Claims
	if err := tok.UnsafeClaimsWithoutVerification(&unverified); err != nil || unverified.Issuer == "" {
		return nil, oauthErr("invalid_client", "client_assertion has no iss")
	}
	c, err := s.dir.Client(ctx, unverified.Issuer)
	if fhir.IsKind(err, fhir.ENotFound) {
		return nil, oauthErr("invalid_client", "unknown client")
	}
	if err != nil {
		return nil, serverErr(err)
	}
	if c.Disabled || c.Type == directory.Public {
		return nil, oauthErr("invalid_client", "this client may not authenticate with a client assertion")
	}
	if h.KeyID == "" {
		return nil, oauthErr("invalid_client", "client_assertion header has no kid")
	}
	if jku, ok := h.ExtraHeaders["jku"].(string); ok && jku != c.JWKSURL {
		return nil, oauthErr("invalid_client", "client_assertion jku is not the client's registered JWKS URL")
	}
	key, oerr := s.clientKey(ctx, c, h.KeyID, jose.SignatureAlgorithm(h.Algorithm))
	if oerr != nil {
		return nil, oerr
	}
	var cl jwt.Claims
	if err := tok.Claims(key, &cl); err != nil {
		return nil, oauthErr("invalid_client", "client_assertion signature is invalid")
	}
	now := s.a.Now()
	switch {
	case cl.Issuer != c.ID || cl.Subject != c.ID:
		return nil, oauthErr("invalid_client", "client_assertion iss and sub must both be the client_id")
	case !slices.Contains([]string(cl.Audience), s.tokenURL()):
		return nil, oauthErr("invalid_client", "client_assertion aud must be the token endpoint %s", s.tokenURL())
	case cl.Expiry == nil:
		return nil, oauthErr("invalid_client", "client_assertion has no exp")
	case cl.Expiry.Time().Before(now.Add(-auth.Leeway)):
		return nil, oauthErr("invalid_client", "client_assertion has expired")
	case cl.Expiry.Time().After(now.Add(maxAssertionLife + auth.Leeway)):
		return nil, oauthErr("invalid_client", "client_assertion exp is more than five minutes ahead")
	case cl.NotBefore != nil && cl.NotBefore.Time().After(now.Add(auth.Leeway)),
		cl.IssuedAt != nil && cl.IssuedAt.Time().After(now.Add(auth.Leeway)):
		return nil, oauthErr("invalid_client", "client_assertion is not valid yet")
	case cl.ID == "" || len(cl.ID) > 256:
		return nil, oauthErr("invalid_client", "client_assertion needs a jti of at most 256 characters")
	}
	// One use per jti: remembered until the assertion could no longer be
	// accepted anyway. The store makes the check-and-set atomic across
	// processes.
	created, err := s.kv.PutKVIfAbsent(ctx, &store.KV{Bucket: bucketJTI, Key: c.ID + "|" + cl.ID,
		Expires: cl.Expiry.Time().Add(auth.Leeway + time.Second)})
	if err != nil {
		return nil, serverErr(err)
	}
	if !created {
		return nil, oauthErr("invalid_client", "client_assertion jti has been used before")
	}
	return c, nil
}

// clientKey finds the client's public key kid usable with alg: an RSA key
// of at least 2048 bits for RS384, a P-384 key for ES384.
func (s *Server) clientKey(ctx context.Context, c *directory.Client, kid string, alg jose.SignatureAlgorithm) (any, *Error) {
	var set *jose.JSONWebKeySet
	var err error
	if c.JWKSURL != "" {
		set, err = s.keys.get(ctx, c.JWKSURL, kid)
	} else {
		set = new(jose.JSONWebKeySet)
		err = json.Unmarshal(c.JWKS, set)
	}
	if err != nil {
		return nil, oauthErr("invalid_client", "the client's keys cannot be read: %s", err)
	}
	for _, k := range set.Key(kid) {
		if k.Algorithm != "" && k.Algorithm != string(alg) || k.Use != "" && k.Use != "sig" || !k.IsPublic() {
			continue
		}
		switch pub := k.Key.(type) {
		case *rsa.PublicKey:
			if alg == jose.RS384 && pub.N.BitLen() >= 2048 {
				return pub, nil
			}
		case *ecdsa.PublicKey:
			if alg == jose.ES384 && pub.Curve == elliptic.P384() {
				return pub, nil
			}
		}
	}
	return nil, oauthErr("invalid_client", "no key %q of the client fits %s", kid, alg)
}

// keyCache holds keys fetched from clients' JWKS URLs. A set is kept for
// keyTTL; an unknown kid fetches again, at most every keyRefetch, so that
// a client can rotate keys without waiting and a stream of bogus kids
// cannot make the server hammer the client's URL.
type keyCache struct {
	hc  *http.Client
	now func() time.Time

	mu   sync.Mutex
	sets map[string]*cachedSet
}

type cachedSet struct {
	set     *jose.JSONWebKeySet
	fetched time.Time
}

const (
	keyTTL     = 5 * time.Minute
	keyRefetch = 30 * time.Second
	maxJWKS    = 64 << 10
)

func newKeyCache(hc *http.Client, now func() time.Time) *keyCache {
	return &keyCache{hc: hc, now: now, sets: map[string]*cachedSet{}}
}

func (kc *keyCache) get(ctx context.Context, url, kid string) (*jose.JSONWebKeySet, error) {
	kc.mu.Lock()
	cs := kc.sets[url]
	kc.mu.Unlock()
	now := time.Now()
	if cs != nil {
		age := now.Sub(cs.fetched)
		if age < keyTTL && (len(cs.set.Key(kid)) > 0 || age < keyRefetch) {
			return cs.set, nil
		}
	}
	set, err := kc.fetch(ctx, url)
	if err != nil {
		if cs != nil {
			return cs.set, nil // the URL is down: keys fetched before still count
		}
		return nil, err
	}
	kc.mu.Lock()
	kc.sets[url] = &cachedSet{set: set, fetched: now}
	kc.mu.Unlock()
	return set, nil
}

func (kc *keyCache) fetch(ctx context.Context, url string) (*jose.JSONWebKeySet, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := kc.hc.Do(req)
	if err != nil {
		return nil, errors.New("the JWKS URL cannot be reached")
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("the JWKS URL answered %d", resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKS+1))
	if err != nil || len(b) > maxJWKS {
		return nil, errors.New("the JWKS document is unreadable or larger than 64 KiB")
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(b, &set); err != nil {
		return nil, errors.New("the JWKS document is not a JWK Set")
	}
	return &set, nil
}
