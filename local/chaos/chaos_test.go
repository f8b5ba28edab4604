package chaos

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// A fifth of the answers are the service's refusals, with its headers; the
// rest are the real answers; a refusal after serving still served.
func TestWrapRefusesAShare(t *testing.T) {
	t.Parallel()
	served := 0
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served++
		io.WriteString(w, "real")
	})
	h := Wrap(next, Options{Rate: 0.2, Seed: 1, AfterServing: 1,
		AfterServingOK: func(r *http.Request) bool { return r.Method == http.MethodPost },
		Refuse: func(w http.ResponseWriter, _ *http.Request, st int) {
			w.Header().Set("Retry-After", "1")
			http.Error(w, "refused", st)
		}})
	var refused, real int
	for i := range 2000 {
		method := http.MethodGet
		if i%2 == 0 {
			method = http.MethodPost
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(method, "/x", nil))
		switch {
		case rec.Code == http.StatusOK && rec.Body.String() == "real":
			real++
		case rec.Header().Get("Retry-After") == "1" && strings.Contains(rec.Body.String(), "refused") &&
			(rec.Code == 429 || rec.Code >= 500):
			refused++
		default:
			t.Fatalf("answer %d %q", rec.Code, rec.Body.String())
		}
	}
	if refused < 330 || refused > 470 {
		t.Errorf("%d of 2000 refused, want about 400", refused)
	}
	st := h.Stats()
	if st.Total() != 2000 || st.Refusals() != refused || st.AfterServing == 0 {
		t.Errorf("stats %+v, want 2000 requests, %d refusals, some after serving", st, refused)
	}
	if served != real+st.AfterServing {
		t.Errorf("the handler served %d, want the %d real answers and the %d refused after serving", served, real, st.AfterServing)
	}
	if none := Wrap(next, Options{Refuse: func(http.ResponseWriter, *http.Request, int) { t.Fatal("refused at rate 0") }}); none != nil {
		none.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
	}
}

// The gRPC interceptor refuses with RESOURCE_EXHAUSTED or UNAVAILABLE and
// the service's message.
func TestGRPCRefusesWithGoogleCodes(t *testing.T) {
	t.Parallel()
	g := NewGRPC(0.5, 2, map[codes.Code]string{codes.ResourceExhausted: "quota", codes.Unavailable: "unavailable"})
	icpt := g.Interceptor()
	calls := 0
	handler := func(context.Context, any) (any, error) { calls++; return "ok", nil }
	seen := map[codes.Code]int{}
	for range 400 {
		resp, err := icpt(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: "/x/Y"}, handler)
		if err == nil {
			if resp != "ok" {
				t.Fatalf("answer %v", resp)
			}
			continue
		}
		st := status.Convert(err)
		if (st.Code() == codes.ResourceExhausted && st.Message() != "quota") || (st.Code() == codes.Unavailable && st.Message() != "unavailable") {
			t.Fatalf("refusal %v", err)
		}
		seen[st.Code()]++
	}
	s := g.Stats()
	if seen[codes.ResourceExhausted] == 0 || seen[codes.Unavailable] == 0 || calls+s.Refusals() != 400 ||
		s.Refused[429] != seen[codes.ResourceExhausted] {
		t.Errorf("refused %v, stats %+v, %d served", seen, s, calls)
	}
}
