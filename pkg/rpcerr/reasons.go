package rpcerr

import (
	"net/http"

	"google.golang.org/grpc/codes"

	errorsv1 "github.com/mgx-ai/mgx/proto/gen/mgx/errors/v1"
)

// StatusClientClosed is nginx's status for a client that went away; it only reaches logs, never the
// (gone) client.
const StatusClientClosed = 499

type reasonSpec struct {
	code   codes.Code
	status int
	// message is what the caller sees when the funnel has nothing more specific that is safe to
	// show: always for server faults.
	message string
}

// reasons is the one table of the error contract: every reason's gRPC code, HTTP status and public
// message. The HTTP status follows the gRPC code (as grpc-gateway's table does), except where the
// REST contract says otherwise: a command's own timeout is 408 (the caller set it), a server's
// deadline 504, a body over the limit 413, a body too slow 408, a wrong method 405.
var reasons = map[errorsv1.ErrorReason]reasonSpec{
	errorsv1.ErrorReason_INTERNAL:            {codes.Internal, http.StatusInternalServerError, "internal error"},
	errorsv1.ErrorReason_INVALID_ARGUMENT:    {codes.InvalidArgument, http.StatusBadRequest, "invalid request"},
	errorsv1.ErrorReason_NOT_FOUND:           {codes.NotFound, http.StatusNotFound, "not found"},
	errorsv1.ErrorReason_METHOD_NOT_ALLOWED:  {codes.Unimplemented, http.StatusMethodNotAllowed, "method not allowed"},
	errorsv1.ErrorReason_UNAUTHENTICATED:     {codes.Unauthenticated, http.StatusUnauthorized, "authentication required"},
	errorsv1.ErrorReason_PERMISSION_DENIED:   {codes.PermissionDenied, http.StatusForbidden, "permission denied"},
	errorsv1.ErrorReason_ALREADY_EXISTS:      {codes.AlreadyExists, http.StatusConflict, "already exists"},
	errorsv1.ErrorReason_FAILED_PRECONDITION: {codes.FailedPrecondition, http.StatusBadRequest, "the request does not fit the current state"},
	errorsv1.ErrorReason_CONFLICT:            {codes.Aborted, http.StatusConflict, "conflict with a concurrent request; try again"},
	errorsv1.ErrorReason_RESOURCE_EXHAUSTED:  {codes.ResourceExhausted, http.StatusTooManyRequests, "limit reached"},
	errorsv1.ErrorReason_CANCELED:            {codes.Canceled, StatusClientClosed, "request canceled"},
	errorsv1.ErrorReason_DEADLINE_EXCEEDED:   {codes.DeadlineExceeded, http.StatusGatewayTimeout, "deadline exceeded"},
	errorsv1.ErrorReason_UNAVAILABLE:         {codes.Unavailable, http.StatusServiceUnavailable, "upstream service unavailable"},
	errorsv1.ErrorReason_UNIMPLEMENTED:       {codes.Unimplemented, http.StatusNotImplemented, "not implemented"},
	errorsv1.ErrorReason_REQUEST_TOO_LARGE:   {codes.ResourceExhausted, http.StatusRequestEntityTooLarge, "request body too large"},
	errorsv1.ErrorReason_REQUEST_TIMEOUT:     {codes.DeadlineExceeded, http.StatusRequestTimeout, "the request body did not arrive in time"},
	errorsv1.ErrorReason_QUOTA_EXCEEDED:      {codes.ResourceExhausted, http.StatusTooManyRequests, "quota used up"},

	errorsv1.ErrorReason_INVALID_CREDENTIALS: {codes.Unauthenticated, http.StatusUnauthorized, "invalid email or password"},
	errorsv1.ErrorReason_TOKEN_INVALID:       {codes.Unauthenticated, http.StatusUnauthorized, "invalid token"},
	errorsv1.ErrorReason_TOKEN_EXPIRED:       {codes.Unauthenticated, http.StatusUnauthorized, "token expired"},
	errorsv1.ErrorReason_EMAIL_TAKEN:         {codes.AlreadyExists, http.StatusConflict, "email already registered"},
	errorsv1.ErrorReason_LOGIN_THROTTLED:     {codes.ResourceExhausted, http.StatusTooManyRequests, "too many failed logins"},
	errorsv1.ErrorReason_API_KEY_NOT_FOUND:   {codes.NotFound, http.StatusNotFound, "api key not found"},
	errorsv1.ErrorReason_RATE_LIMITED:        {codes.ResourceExhausted, http.StatusTooManyRequests, "rate limit exceeded"},
	errorsv1.ErrorReason_TOO_MANY_STREAMS:    {codes.ResourceExhausted, http.StatusTooManyRequests, "too many open streams"},

	errorsv1.ErrorReason_INTERNAL_TOKEN_MISSING: {codes.Unauthenticated, http.StatusUnauthorized, "missing internal token"},
	errorsv1.ErrorReason_INTERNAL_TOKEN_INVALID: {codes.Unauthenticated, http.StatusUnauthorized, "invalid internal token"},
	errorsv1.ErrorReason_USER_ID_AMBIGUOUS:      {codes.Unauthenticated, http.StatusUnauthorized, "more than one user id on the call"},
	errorsv1.ErrorReason_OPERATOR_REQUIRED:      {codes.PermissionDenied, http.StatusForbidden, "operator role required"},

	errorsv1.ErrorReason_SESSION_NOT_FOUND:   {codes.NotFound, http.StatusNotFound, "session not found"},
	errorsv1.ErrorReason_RUN_ACTIVE:          {codes.Aborted, http.StatusConflict, "a run is already in progress for this session; wait for it or cancel it"},
	errorsv1.ErrorReason_NO_QUESTION_WAITING: {codes.FailedPrecondition, http.StatusBadRequest, "no question is waiting for an answer in this session"},
	errorsv1.ErrorReason_NO_RUN:              {codes.NotFound, http.StatusNotFound, "the session has no run yet"},
	errorsv1.ErrorReason_ARTIFACT_NOT_FOUND:  {codes.NotFound, http.StatusNotFound, "artifact not found"},

	errorsv1.ErrorReason_SANDBOX_NOT_FOUND:           {codes.NotFound, http.StatusNotFound, "sandbox not found"},
	errorsv1.ErrorReason_SANDBOX_UNAVAILABLE:         {codes.Unavailable, http.StatusServiceUnavailable, "the sandbox is unavailable; try again"},
	errorsv1.ErrorReason_SANDBOX_INVALID_ARGUMENT:    {codes.InvalidArgument, http.StatusBadRequest, "invalid argument"},
	errorsv1.ErrorReason_SANDBOX_PATH_NOT_FOUND:      {codes.NotFound, http.StatusNotFound, "not found in the sandbox"},
	errorsv1.ErrorReason_SANDBOX_PROCESS_EXISTS:      {codes.AlreadyExists, http.StatusConflict, "a process of that name is running"},
	errorsv1.ErrorReason_SANDBOX_FAILED_PRECONDITION: {codes.FailedPrecondition, http.StatusBadRequest, "failed precondition"},
	errorsv1.ErrorReason_EXEC_TIMEOUT:                {codes.DeadlineExceeded, http.StatusRequestTimeout, "command timed out and was killed"},
	errorsv1.ErrorReason_SANDBOX_PATH_DENIED:         {codes.PermissionDenied, http.StatusForbidden, "this file may not be read or written through the API"},
	errorsv1.ErrorReason_WORKSPACE_LOST:              {codes.FailedPrecondition, http.StatusConflict, "the session's workspace is lost and was not replaced; reset it to continue"},
	errorsv1.ErrorReason_CHECKPOINT_NOT_FOUND:        {codes.NotFound, http.StatusNotFound, "checkpoint not found"},
}

// byCode is the generic reason of each gRPC code: what an error that carries no mgx reason is.
var byCode = map[codes.Code]errorsv1.ErrorReason{
	codes.Canceled:           errorsv1.ErrorReason_CANCELED,
	codes.InvalidArgument:    errorsv1.ErrorReason_INVALID_ARGUMENT,
	codes.OutOfRange:         errorsv1.ErrorReason_INVALID_ARGUMENT,
	codes.DeadlineExceeded:   errorsv1.ErrorReason_DEADLINE_EXCEEDED,
	codes.NotFound:           errorsv1.ErrorReason_NOT_FOUND,
	codes.AlreadyExists:      errorsv1.ErrorReason_ALREADY_EXISTS,
	codes.PermissionDenied:   errorsv1.ErrorReason_PERMISSION_DENIED,
	codes.Unauthenticated:    errorsv1.ErrorReason_UNAUTHENTICATED,
	codes.ResourceExhausted:  errorsv1.ErrorReason_RESOURCE_EXHAUSTED,
	codes.FailedPrecondition: errorsv1.ErrorReason_FAILED_PRECONDITION,
	codes.Aborted:            errorsv1.ErrorReason_CONFLICT,
	codes.Unimplemented:      errorsv1.ErrorReason_UNIMPLEMENTED,
	codes.Unavailable:        errorsv1.ErrorReason_UNAVAILABLE,
}

func spec(r errorsv1.ErrorReason) reasonSpec {
	if s, ok := reasons[r]; ok {
		return s
	}
	return reasons[errorsv1.ErrorReason_INTERNAL]
}

// Code is the gRPC code of reason (Internal for a reason not in the table).
func Code(r errorsv1.ErrorReason) codes.Code { return spec(r).code }

// HTTPStatus is the REST status of reason (500 for a reason not in the table).
func HTTPStatus(r errorsv1.ErrorReason) int { return spec(r).status }

// PublicMessage is reason's stable message for callers.
func PublicMessage(r errorsv1.ErrorReason) string { return spec(r).message }

// ForCode is the generic reason of a gRPC code: INTERNAL for codes that only a server fault
// produces (Unknown, Internal, DataLoss).
func ForCode(c codes.Code) errorsv1.ErrorReason {
	if r, ok := byCode[c]; ok {
		return r
	}
	return errorsv1.ErrorReason_INTERNAL
}
