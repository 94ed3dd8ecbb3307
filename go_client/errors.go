package headwater

import (
	"errors"
	"fmt"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Sentinels for errors.Is, one per status code a caller acts on. An *Error matches the one of
// its code: errors.Is(err, headwater.ErrNotFound).
var (
	ErrInvalidArgument    = errors.New("headwater: invalid argument")
	ErrNotFound           = errors.New("headwater: not found")
	ErrAlreadyExists      = errors.New("headwater: already exists")
	ErrFailedPrecondition = errors.New("headwater: failed precondition")
	ErrUnavailable        = errors.New("headwater: service unavailable")
	ErrDeadlineExceeded   = errors.New("headwater: deadline exceeded")
	ErrCanceled           = errors.New("headwater: canceled")
	ErrInternal           = errors.New("headwater: internal error")
)

var sentinels = map[codes.Code]error{
	codes.InvalidArgument:    ErrInvalidArgument,
	codes.NotFound:           ErrNotFound,
	codes.AlreadyExists:      ErrAlreadyExists,
	codes.FailedPrecondition: ErrFailedPrecondition,
	codes.Unavailable:        ErrUnavailable,
	codes.DeadlineExceeded:   ErrDeadlineExceeded,
	codes.Canceled:           ErrCanceled,
	codes.Internal:           ErrInternal,
}

// FieldViolation is one problem with one request field (a google.rpc.BadRequest entry).
type FieldViolation struct {
	Field       string
	Description string
}

// Error is a failed call: the status code, the service's message word for word, and what the
// status details say (the service sends a google.rpc.ErrorInfo on every error, a BadRequest
// for bad fields and a ResourceInfo for missing or existing resources).
type Error struct {
	Code    codes.Code
	Message string
	// Reason is the ErrorInfo reason, stable across releases: "FLOW_RUN_NOT_FOUND",
	// "INVALID_ARGUMENT", "FLOW_RUN_ALREADY_EXISTS", ...; empty when the status had none.
	Reason string
	// Domain is the ErrorInfo domain, "headwater.dev" for the service's own errors.
	Domain string
	// Metadata is the ErrorInfo metadata, e.g. "existing_flow_run_id" on ALREADY_EXISTS.
	Metadata map[string]string
	// Violations lists the bad request fields, when the service named them.
	Violations []FieldViolation
	// ResourceType and ResourceName say which resource, e.g. "headwater.v1.flow_run" and its id.
	ResourceType string
	ResourceName string
	// Details holds every status detail decoded, including any the fields above do not cover.
	Details []any

	status *status.Status
}

func (e *Error) Error() string {
	if e.Reason != "" {
		return fmt.Sprintf("headwater: %s (%s): %s", e.Code, e.Reason, e.Message)
	}
	return fmt.Sprintf("headwater: %s: %s", e.Code, e.Message)
}

// Is makes errors.Is(err, ErrNotFound) and the other sentinels match on the status code.
func (e *Error) Is(target error) bool {
	sentinel, ok := sentinels[e.Code]
	return ok && sentinel == target
}

// GRPCStatus returns the status the error came from, so status.FromError and status.Code
// still work on it.
func (e *Error) GRPCStatus() *status.Status {
	return e.status
}

// FromError turns an error from a gRPC call into an *Error, reading the status details; it
// returns nil for nil. A context error (the caller's deadline or cancel) becomes an *Error
// matching ErrDeadlineExceeded or ErrCanceled; any other error is returned as it is.
func FromError(err error) error {
	if err == nil {
		return nil
	}
	var already *Error
	if errors.As(err, &already) {
		return err
	}
	st, ok := status.FromError(err)
	if !ok {
		st = status.FromContextError(err)
		if st.Code() == codes.Unknown {
			return err
		}
	}
	out := &Error{Code: st.Code(), Message: st.Message(), status: st}
	for _, detail := range st.Details() {
		out.Details = append(out.Details, detail)
		switch d := detail.(type) {
		case *errdetails.ErrorInfo:
			out.Reason, out.Domain, out.Metadata = d.GetReason(), d.GetDomain(), d.GetMetadata()
		case *errdetails.BadRequest:
			for _, v := range d.GetFieldViolations() {
				out.Violations = append(out.Violations, FieldViolation{Field: v.GetField(), Description: v.GetDescription()})
			}
		case *errdetails.ResourceInfo:
			out.ResourceType, out.ResourceName = d.GetResourceType(), d.GetResourceName()
		}
	}
	return out
}
