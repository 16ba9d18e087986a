package lua

import "errors"

// ErrArgument matches (errors.Is) every error a wrapper returns for a call it
// refused before sending anything to Redis: arguments no script takes. Such
// an error says nothing about Redis.
var ErrArgument = errors.New("script arguments refused before any redis call")

// argumentError is a call refused before it reached Redis; its message is
// err's.
type argumentError struct{ err error }

func (e argumentError) Error() string        { return e.err.Error() }
func (e argumentError) Unwrap() error        { return e.err }
func (e argumentError) Is(target error) bool { return target == ErrArgument }

// refused marks err as an argument error.
func refused(err error) error { return argumentError{err} }
