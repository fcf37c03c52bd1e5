package smart

import (
	"context"
	"time"

	"github.com/sharedcare/sharedcare/internal/auth"
	"github.com/sharedcare/sharedcare/internal/directory"
	"github.com/sharedcare/sharedcare/internal/fhir"
)

// loginState is what the server remembers about an account's logins:
// failures in a row (reset by a success), the lock they lead to, and the
// last TOTP step used (a code works once).
type loginState struct {
	Failures    int       `json:"failures,omitempty"`
	LockedUntil time.Time `json:"locked_until,omitzero"`
	LastStep    int64     `json:"last_step,omitempty"`
}

// checkCredentials checks a user name, password and (for accounts that
// have one) TOTP code, counting failures and locking the account after
// MaxFailures in a row. Every refusal looks the same to the caller and
// costs one password hash, whether or not the account exists.
func (s *Server) checkCredentials(ctx context.Context, name, password, code string) (bool, *directory.User, error) {
	u, err := s.dir.User(ctx, name)
	if fhir.IsKind(err, fhir.ENotFound) || name == "" {
		auth.CheckPassword("", password)
		return false, nil, nil
	}
	if err != nil {
		return false, nil, err
	}
	for range 10 {
		var st loginState
		v, err := s.getJSON(ctx, bucketLogins, u.Name, &st)
		if err != nil {
			return false, nil, err
		}
		now := s.a.Now()
		ok := auth.CheckPassword(u.PasswordHash, password)
		if now.Before(st.LockedUntil) || u.Disabled {
			return false, nil, nil // a lock is not extended by guesses during it
		}
		var step int64
		if ok && u.TOTPSecret != "" {
			step, ok = auth.CheckTOTP(u.TOTPSecret, code, now, st.LastStep)
		}
		if ok {
			st.Failures = 0
			if step != 0 {
				st.LastStep = step
			}
		} else {
			st.Failures++
			if st.Failures >= s.cfg.MaxFailures {
				st.Failures = 0
				st.LockedUntil = now.Add(s.cfg.Lockout)
			}
		}
		err = s.casJSON(ctx, bucketLogins, u.Name, st, v, time.Time{})
		if fhir.IsKind(err, fhir.EConflict) {
			continue // another login of this account at the same moment: count again
		}
		if err != nil {
			return false, nil, err
		}
		return ok, u, nil
	}
	return false, nil, nil
}

// Unlock clears an account's failed logins and lock (sharedcare admin user
// unlock).
func (s *Server) Unlock(ctx context.Context, name string) error {
	return s.kv.DeleteKV(ctx, bucketLogins, name)
}
