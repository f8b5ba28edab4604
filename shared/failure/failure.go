// Package failure separates failures worth retrying from those that can never
// succeed. A handler returns retryable errors so Pub/Sub redelivers the
// message; a permanent one is acknowledged and the lesson marked failed with
// its reason.
package failure

import (
	"errors"
	"fmt"
)

// Permanent wraps an error that retrying cannot fix: bad input, a file over the
// size limit, a checksum that the source itself contradicts.
type Permanent struct{ Err error }

func (p *Permanent) Error() string { return p.Err.Error() }
func (p *Permanent) Unwrap() error { return p.Err }

// Retryable wraps an error that may pass on a later attempt: a timeout, a 5xx,
// a dropped connection.
type Retryable struct{ Err error }

func (r *Retryable) Error() string { return r.Err.Error() }
func (r *Retryable) Unwrap() error { return r.Err }

// Permanentf formats a permanent failure.
func Permanentf(format string, args ...any) error {
	return &Permanent{Err: fmt.Errorf(format, args...)}
}

// Retryablef formats a retryable failure.
func Retryablef(format string, args ...any) error {
	return &Retryable{Err: fmt.Errorf(format, args...)}
}

// IsPermanent reports whether err, or anything it wraps, is permanent. An
// error marked neither way counts as retryable: giving up on an unknown error
// would lose a lesson, retrying it costs only a delivery.
func IsPermanent(err error) bool {
	var p *Permanent
	return errors.As(err, &p)
}
