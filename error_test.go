package writ_test

import (
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/writ-dev/writ"
)

func TestErrorString(t *testing.T) {
	tests := []struct {
		err  *writ.Error
		want string
	}{
		{&writ.Error{Kind: writ.KindDenied, Code: "tool_not_in_scope", Message: "shell:net is not in the run's scope"}, "tool_not_in_scope: shell:net is not in the run's scope"},
		{&writ.Error{Kind: writ.KindInvalid, Message: "bad input"}, "bad input"},
		{writ.Errorf(writ.KindConflict, "replay", "trigger %s was seen before", "01jd"), "replay: trigger 01jd was seen before"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("(%#v).Error() = %q; want %q", tt.err, got, tt.want)
		}
	}
	e := writ.Errorf(writ.KindNotFound, "no_run", "run %q not found", "x")
	if e.Kind != writ.KindNotFound || e.Code != "no_run" || e.Message != `run "x" not found` {
		t.Errorf("Errorf() = %#v", e)
	}
}

// TestRetryableKinds: overload is 503, a rate limit 429, and both (and
// nothing else) ask the caller to retry.
func TestRetryableKinds(t *testing.T) {
	if s := writ.KindRateLimited.HTTPStatus(); s != 429 {
		t.Errorf("KindRateLimited.HTTPStatus() = %d; want 429", s)
	}
	if s := writ.KindRateLimited.String(); s != "rate_limited" {
		t.Errorf("KindRateLimited.String() = %q", s)
	}
	for k, want := range map[writ.Kind]bool{writ.KindUnavailable: true, writ.KindRateLimited: true, writ.KindDenied: false, writ.KindInternal: false} {
		if got := writ.Retryable(fmt.Errorf("x: %w", writ.Errorf(k, "c", "m"))); got != want {
			t.Errorf("Retryable(%v) = %v; want %v", k, got, want)
		}
	}
	if writ.Retryable(nil) {
		t.Error("Retryable(nil) = true")
	}
}

func TestErrorKindAndCode(t *testing.T) {
	denied := &writ.Error{Kind: writ.KindDenied, Code: "bad_signature", Message: "signature does not verify"}
	pending := &writ.Error{Kind: writ.KindApprovalPending, Code: "approval_required", Approval: "apr_1"}
	tests := []struct {
		name     string
		err      error
		wantKind writ.Kind
		wantCode string
	}{
		{"nil", nil, writ.KindInternal, ""},
		{"plain error", errors.New("disk full"), writ.KindInternal, "internal"},
		{"io.EOF wrapped", fmt.Errorf("read: %w", io.EOF), writ.KindInternal, "internal"},
		{"*Error", denied, writ.KindDenied, "bad_signature"},
		{"wrapped once", fmt.Errorf("verify trigger: %w", denied), writ.KindDenied, "bad_signature"},
		{"wrapped twice", fmt.Errorf("start run: %w", fmt.Errorf("verify: %w", denied)), writ.KindDenied, "bad_signature"},
		{"first *Error in the chain wins", fmt.Errorf("outer: %w", &writ.Error{Kind: writ.KindConflict, Code: "replay", Message: fmt.Sprintf("inner: %v", denied)}), writ.KindConflict, "replay"},
		{"errors.Join", errors.Join(errors.New("other"), pending), writ.KindApprovalPending, "approval_required"},
		{"%v does not wrap", fmt.Errorf("verify: %v", denied), writ.KindInternal, "internal"},
		{"zero Kind is internal", &writ.Error{Code: "x", Message: "y"}, writ.KindInternal, "x"},
		{"empty code", &writ.Error{Kind: writ.KindInvalid, Message: "y"}, writ.KindInvalid, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := writ.ErrorKind(tt.err); got != tt.wantKind {
				t.Errorf("ErrorKind(%v) = %v; want %v", tt.err, got, tt.wantKind)
			}
			if got := writ.ErrorCode(tt.err); got != tt.wantCode {
				t.Errorf("ErrorCode(%v) = %q; want %q", tt.err, got, tt.wantCode)
			}
		})
	}
	// errors.As reaches the fields through wrapping.
	var e *writ.Error
	if !errors.As(fmt.Errorf("gate: %w", pending), &e) || e.Approval != "apr_1" {
		t.Errorf("errors.As through %%w lost the approval id: %#v", e)
	}
}

func TestKindString(t *testing.T) {
	tests := []struct {
		k    writ.Kind
		want string
	}{
		{writ.KindInternal, "internal"},
		{writ.KindInvalid, "invalid"},
		{writ.KindUnauthenticated, "unauthenticated"},
		{writ.KindDenied, "denied"},
		{writ.KindApprovalPending, "approval_pending"},
		{writ.KindNotFound, "not_found"},
		{writ.KindConflict, "conflict"},
		{writ.KindTooLarge, "too_large"},
		{writ.KindUnavailable, "unavailable"},
		{writ.Kind(99), "kind(99)"},
		{writ.Kind(-1), "kind(-1)"},
	}
	for _, tt := range tests {
		if got := kindString(tt.k); got != tt.want {
			t.Errorf("Kind(%d).String() = %q; want %q", int(tt.k), got, tt.want)
		}
	}
	var zero writ.Kind
	if zero != writ.KindInternal {
		t.Errorf("the zero Kind is %v; want internal, so an unset Kind never leaks as something more permissive", zero)
	}
}

// kindString calls k.String, turning a panic into a result the test
// reports, so that the rest of the package's tests still run.
func kindString(k writ.Kind) (s string) {
	defer func() {
		if r := recover(); r != nil {
			s = fmt.Sprintf("(panic: %v)", r)
		}
	}()
	return k.String()
}

func TestKindHTTPStatus(t *testing.T) {
	tests := []struct {
		k    writ.Kind
		want int
	}{
		{writ.KindInternal, 500},
		{writ.KindInvalid, 400},
		{writ.KindUnauthenticated, 401},
		{writ.KindDenied, 403},
		{writ.KindApprovalPending, 403},
		{writ.KindNotFound, 404},
		{writ.KindConflict, 409},
		{writ.KindTooLarge, 413},
		{writ.KindUnavailable, 503},
		{writ.Kind(99), 500},
		{writ.Kind(-1), 500},
	}
	for _, tt := range tests {
		if got := tt.k.HTTPStatus(); got != tt.want {
			t.Errorf("%v.HTTPStatus() = %d; want %d", tt.k, got, tt.want)
		}
	}
}
