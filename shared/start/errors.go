package start

import (
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/coursekb/pipeline/shared/failure"
)

// apiError classifies an Executions API error: a workflow that does not
// exist, or an argument or label it refuses, will not start on a retry.
func apiError(what string, err error) error {
	switch status.Code(err) {
	case codes.NotFound, codes.InvalidArgument, codes.PermissionDenied, codes.FailedPrecondition:
		return failure.Permanentf("%s: %w", what, err)
	}
	return failure.Retryablef("%s: %w", what, err)
}
