package chatwoottest

import "errors"

var (
	// ErrClosed is returned by operations on a closed Server or MemListener.
	ErrClosed = errors.New("chatwoottest: closed")
	// ErrNotFound is returned when an account, inbox, contact, conversation or
	// message does not exist in the model.
	ErrNotFound = errors.New("chatwoottest: not found")
	// ErrInvalid is returned when a model operation gets invalid input.
	ErrInvalid = errors.New("chatwoottest: invalid input")
)
