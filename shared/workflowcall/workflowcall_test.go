package workflowcall

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/coursekb/pipeline/shared/failure"
)

func post(body string) *http.Request {
	return httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
}

// A request names a lesson version and a known action; everything wrong with
// it is named at once, as a bad request.
func TestDecode(t *testing.T) {
	req, err := Decode(post(`{"lessonId":"pyL1vars001","version":2,"action":"poll","operation":"op/1","extra":1}`), ActionStart, ActionPoll)
	if err != nil || req.LessonID != "pyL1vars001" || req.Version != 2 || req.Operation != "op/1" {
		t.Fatalf("good request: %+v, %v", req, err)
	}
	for body, says := range map[string]string{
		`{"lessonId":"a/b","version":0,"action":"dance"}`: "not a page id",
		`{"lessonId":"L1","version":1,"action":"poll"}`:   "names no operation",
		`not json`: "not a JSON object",
	} {
		_, err := Decode(post(body), ActionStart, ActionPoll)
		if !IsBadRequest(err) || !failure.IsPermanent(err) || !strings.Contains(err.Error(), says) {
			t.Errorf("%s: %v, want a bad request saying %q", body, err, says)
		}
	}
	if _, err := Decode(httptest.NewRequest(http.MethodGet, "/", nil), ActionStart); !IsBadRequest(err) {
		t.Errorf("GET: %v, want a bad request", err)
	}
}

// The status tells the workflow's retry policy what to do.
func TestWriteMapsFailuresToStatuses(t *testing.T) {
	for _, tc := range []struct {
		err    error
		status int
	}{
		{nil, http.StatusOK},
		{&failure.Permanent{Err: &BadRequestError{Err: errors.New("x")}}, http.StatusBadRequest},
		{failure.Permanentf("video has no audio track"), http.StatusUnprocessableEntity},
		{failure.Retryablef("speech 503"), http.StatusServiceUnavailable},
		{errors.New("unclassified"), http.StatusServiceUnavailable},
	} {
		rec := httptest.NewRecorder()
		Write(rec, Response{Done: true}, tc.err)
		if rec.Code != tc.status {
			t.Errorf("%v: status %d, want %d", tc.err, rec.Code, tc.status)
		}
		if tc.status == http.StatusServiceUnavailable && rec.Header().Get("Retry-After") == "" {
			t.Errorf("%v: no Retry-After on a retryable answer", tc.err)
		}
	}
}
