package writ

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"
)

// Kind classifies an [Error] for transports: the HTTP ones (the API, the
// git gateway) answer each Kind with its [Kind.HTTPStatus], the CLI maps
// some to exit codes.
type Kind int

// Error kinds. The zero value is KindInternal, so an unset Kind never leaks
// as something more permissive.
const (
	KindInternal        Kind = iota // a bug or an unavailable dependency; the message is generic
	KindInvalid                     // the request is malformed or breaks a rule of the contract
	KindUnauthenticated             // no valid credential
	KindDenied                      // authenticated, but not allowed (policy, scope, role)
	KindApprovalPending             // a human approval gate is open
	KindNotFound                    // no such object
	KindConflict                    // state conflict: a replay, a final run, a moved head
	KindTooLarge                    // the body or an item is over its limit
	KindUnavailable                 // temporarily refused (shutting down, frozen, overloaded, the store cannot write); retry
	KindRateLimited                 // the caller is over its rate limit; retry after Error.RetryAfter
)

var kindNames = [...]string{"internal", "invalid", "unauthenticated", "denied", "approval_pending", "not_found", "conflict", "too_large", "unavailable", "rate_limited"}

// httpStatus is the one table from error kind to HTTP status.
var httpStatus = [...]int{
	KindInternal:        http.StatusInternalServerError,
	KindInvalid:         http.StatusBadRequest,
	KindUnauthenticated: http.StatusUnauthorized,
	KindDenied:          http.StatusForbidden,
	KindApprovalPending: http.StatusForbidden,
	KindNotFound:        http.StatusNotFound,
	KindConflict:        http.StatusConflict,
	KindTooLarge:        http.StatusRequestEntityTooLarge,
	KindUnavailable:     http.StatusServiceUnavailable,
	KindRateLimited:     http.StatusTooManyRequests,
}

// HTTPStatus is the HTTP status an error of kind k is answered with; an
// unknown kind is a 500, as KindInternal is.
func (k Kind) HTTPStatus() int {
	if k >= 0 && int(k) < len(httpStatus) {
		return httpStatus[k]
	}
	return http.StatusInternalServerError
}

func (k Kind) String() string {
	if k >= 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Error is the one error type whose Message is safe to show to the caller.
// Code is a stable snake_case reason ("bad_signature", "replay"); Items
// lists the offending items when there are several (an over-broad scope
// lists every item outside its allowance). Decision and Approval name the
// decision and approval the error refers to, when there is one.
// RetryAfter, for KindUnavailable and KindRateLimited, is how long the
// caller should wait before it retries (the HTTP Retry-After header);
// zero means the transport's default.
type Error struct {
	Kind       Kind
	Code       string
	Message    string
	Items      []string
	Decision   string
	Approval   string
	RetryAfter time.Duration
}

// RetryAfterHeader is the HTTP Retry-After value of e: whole seconds,
// rounded up, at least 1 (the RetryAfter of zero is 1 s).
func (e *Error) RetryAfterHeader() string {
	s := int64(math.Ceil(e.RetryAfter.Seconds()))
	return strconv.FormatInt(max(s, 1), 10)
}

func (e *Error) Error() string {
	if e.Code == "" {
		return e.Message
	}
	return e.Code + ": " + e.Message
}

// Errorf returns an *Error of the given kind and code. The message must not
// contain secrets or internal detail: it is shown to the caller.
func Errorf(kind Kind, code, format string, args ...any) *Error {
	return &Error{Kind: kind, Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorKind returns the Kind of the first *Error in err's chain, or
// KindInternal when there is none.
func ErrorKind(err error) Kind {
	var e *Error
	if errors.As(err, &e) && e != nil {
		return e.Kind
	}
	return KindInternal
}

// ErrorCode returns the Code of the first *Error in err's chain, "internal"
// when there is none, and "" for a nil err.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) && e != nil {
		return e.Code
	}
	return "internal"
}

// Retryable reports whether err asks the caller to retry later: its first
// *Error is KindUnavailable or KindRateLimited (docs/design.md §4.8).
func Retryable(err error) bool {
	k := ErrorKind(err)
	return err != nil && (k == KindUnavailable || k == KindRateLimited)
}
