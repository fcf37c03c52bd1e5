package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"

	"github.com/sharedcare/sharedcare/internal/fhir"
)

// Password hashing for the built-in accounts: argon2id in the PHC string
// format ($argon2id$v=19$m=...,t=...,p=...$salt$hash), so that the cost can
// be raised later and old hashes still verify with the parameters they
// carry.
//
// The cost is OWASP's argon2id baseline (m = 19 MiB, t = 2, p = 1): 30 ms
// per check on the development machine (BenchmarkCheckPassword), slow enough to make
// guessing from a stolen store expensive, cheap enough for a 2-core node to
// log a ward in at shift change.
const (
	argonMemory  = 19 * 1024 // KiB
	argonTime    = 2
	argonThreads = 1
	argonKeyLen  = 32
	argonSaltLen = 16
)

// MinPasswordLength is the shortest password an account may have (NCSC:
// length over composition rules).
const MinPasswordLength = 12

// HashPassword returns the argon2id hash of password in PHC format. It
// refuses passwords shorter than MinPasswordLength or longer than 1024
// bytes (the hash cost does not depend on length, but a bound keeps request
// bodies honest).
func HashPassword(password string) (string, error) {
	if utf8.RuneCountInString(password) < MinPasswordLength {
		return "", fhir.Invalid("", "a password needs at least %d characters", MinPasswordLength)
	}
	if len(password) > 1024 {
		return "", fhir.Invalid("", "a password may have at most 1024 bytes")
	}
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fhir.Internal(err)
	}
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
}

// errBadHash is a stored hash this code cannot read.
var errBadHash = errors.New("auth: malformed password hash")

// CheckPassword reports whether password matches the PHC hash. A malformed
// hash matches nothing. The comparison takes constant time in the key. An
// empty hash (no such account) costs one hash like a real check and
// matches nothing, so that response times do not tell which accounts
// exist.
func CheckPassword(hash, password string) bool {
	if hash == "" {
		checkPassword(dummyHash, password)
		return false
	}
	ok, err := checkPassword(hash, password)
	return err == nil && ok
}

func checkPassword(hash, password string) (bool, error) {
	parts := strings.Split(hash, "$")
	// "", "argon2id", "v=19", "m=..,t=..,p=..", salt, key
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return false, errBadHash
	}
	var v int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return false, errBadHash
	}
	var m, t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil || m == 0 || m > 1<<22 || t == 0 || t > 64 || p == 0 {
		return false, errBadHash
	}
	salt, err := base64.RawStdEncoding.DecodeString(parts[4])
	if err != nil || len(salt) < 8 {
		return false, errBadHash
	}
	key, err := base64.RawStdEncoding.DecodeString(parts[5])
	if err != nil || len(key) < 16 || len(key) > 128 {
		return false, errBadHash
	}
	got := argon2.IDKey([]byte(password), salt, t, m, p, uint32(len(key)))
	return subtle.ConstantTimeCompare(got, key) == 1, nil
}

// dummyHash is checked against when an account does not exist, so that a
// wrong user name costs as much time as a wrong password and response times
// do not tell which accounts exist.
var dummyHash = func() string {
	h, err := HashPassword("not-a-real-password-for-timing")
	if err != nil {
		panic(err)
	}
	return h
}()
