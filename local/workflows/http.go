package workflows

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// httpCall makes an http.* call with Workflows semantics: the result is
// {body, code, headers}; a JSON body is decoded; a non-2xx answer raises an
// HttpError, a failed connection ConnectionFailedError or ConnectionError,
// a timeout TimeoutError.
func (f *frame) httpCall(ctx context.Context, st *step, name string, args map[string]any) (any, error) {
	method := strings.ToUpper(strings.TrimPrefix(name, "http."))
	if name == "http.request" {
		m, ok := args["method"].(string)
		if !ok || m == "" {
			return nil, typeError("http.request: method must be a string")
		}
		method = strings.ToUpper(m)
	}
	rawURL, ok := args["url"].(string)
	if !ok {
		return nil, typeError("%s: url must be a string, got %s", name, typeName(args["url"]))
	}
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, valueError("%s: invalid url %q", name, rawURL)
	}
	if q, ok := args["query"]; ok && q != nil {
		if err := addQuery(u, q); err != nil {
			return nil, err
		}
	}
	header := http.Header{}
	if h, ok := args["headers"]; ok && h != nil {
		hm, ok := h.(map[string]any)
		if !ok {
			return nil, typeError("%s: headers must be a map", name)
		}
		for k, v := range hm {
			s, err := scalarString(v)
			if err != nil {
				return nil, typeError("%s: header %s: %v", name, k, err)
			}
			header.Set(k, s)
		}
	}
	var body io.Reader
	if b, ok := args["body"]; ok && b != nil {
		data, ctype, err := encodeBody(b, header.Get("Content-Type"))
		if err != nil {
			return nil, err
		}
		if header.Get("Content-Type") == "" {
			header.Set("Content-Type", ctype)
		}
		body = bytes.NewReader(data)
	}
	timeout := 300 * time.Second
	if t, ok := args["timeout"]; ok && t != nil {
		secs, ok := number(t)
		if !ok || secs <= 0 || secs > 1800 {
			return nil, valueError("%s: timeout must be a number of seconds up to 1800, got %v", name, t)
		}
		timeout = time.Duration(secs * float64(time.Second))
	}
	if a, ok := args["auth"]; ok && a != nil {
		if err := f.authorize(ctx, st, a, u, header); err != nil {
			return nil, err
		}
	}

	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, method, u.String(), body)
	if err != nil {
		return nil, valueError("%s: %v", name, err)
	}
	req.Header = header
	resp, err := f.x.r.opts.HTTPClient.Do(req)
	if err != nil {
		return nil, connectionError(ctx, rctx, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, connectionError(ctx, rctx, err)
	}
	headers := map[string]any{}
	for k, v := range resp.Header {
		headers[k] = joinHeader(v)
	}
	out := map[string]any{
		"body":    decodeBody(data, resp.Header.Get("Content-Type")),
		"code":    resp.StatusCode,
		"headers": headers,
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		out["message"] = fmt.Sprintf("HTTP server responded with error code %d", resp.StatusCode)
		out["tags"] = []any{"HttpError"}
		return nil, raise(out)
	}
	return out, nil
}

func (f *frame) authorize(ctx context.Context, st *step, a any, u *url.URL, header http.Header) error {
	am, ok := a.(map[string]any)
	if !ok {
		return typeError("auth must be a map")
	}
	typ, _ := am["type"].(string)
	if typ != "OIDC" && typ != "OAuth2" {
		return f.refuse(st, "auth type %v %s", am["type"], notSupported)
	}
	audience, _ := am["audience"].(string)
	if audience == "" && typ == "OIDC" {
		aud := *u
		aud.RawQuery, aud.Fragment = "", ""
		audience = aud.String()
	}
	tok, err := f.x.r.opts.Token(ctx, typ, audience)
	if err != nil {
		return raise(errorMap("AuthError", "%v", err))
	}
	header.Set("Authorization", "Bearer "+tok)
	return nil
}

// localToken is an unsigned JWT shaped like a Google-signed identity token:
// enough for a local function that reads its claims, useless elsewhere.
func localToken(_ context.Context, authType, audience string) (string, error) {
	enc := base64.RawURLEncoding
	head := enc.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
	now := time.Now().Unix()
	claims, err := json.Marshal(map[string]any{
		"iss": "https://accounts.google.com", "aud": audience, "sub": "local-workflows",
		"email": "workflows@local.invalid", "auth_type": authType, "iat": now, "exp": now + 3600,
	})
	if err != nil {
		return "", err
	}
	return head + "." + enc.EncodeToString(claims) + ".", nil
}

func scalarString(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case int, float64, bool:
		s, _ := fnString(x)
		return s.(string), nil
	}
	return "", fmt.Errorf("must be a string or a number, got %s", typeName(v))
}

func addQuery(u *url.URL, q any) error {
	qm, ok := q.(map[string]any)
	if !ok {
		return typeError("query must be a map")
	}
	vals := u.Query()
	for _, k := range sortedKeys(qm) {
		items := []any{qm[k]}
		if l, ok := qm[k].([]any); ok {
			items = l
		}
		for _, it := range items {
			s, err := scalarString(it)
			if err != nil {
				return typeError("query %s: %v", k, err)
			}
			vals.Add(k, s)
		}
	}
	u.RawQuery = vals.Encode()
	return nil
}

// encodeBody encodes a request body as Workflows does: JSON unless the
// Content-Type says otherwise; bytes and text as they are.
func encodeBody(b any, ctype string) ([]byte, string, error) {
	mt, _, _ := mime.ParseMediaType(ctype)
	switch {
	case mt == "application/x-www-form-urlencoded":
		if s, ok := b.(string); ok {
			return []byte(s), ctype, nil
		}
		m, ok := b.(map[string]any)
		if !ok {
			return nil, "", typeError("a form body must be a map or a string")
		}
		vals := url.Values{}
		for k, v := range m {
			s, err := scalarString(v)
			if err != nil {
				return nil, "", typeError("form field %s: %v", k, err)
			}
			vals.Set(k, s)
		}
		return []byte(vals.Encode()), ctype, nil
	case mt == "" || mt == "application/json" || strings.HasSuffix(mt, "+json"):
		if raw, ok := b.([]byte); ok && mt == "" {
			return raw, "application/octet-stream", nil
		}
		data, err := encodeJSON(b, false)
		if err != nil {
			return nil, "", typeError("request body: %v", err)
		}
		return data, "application/json; charset=utf-8", nil
	}
	switch x := b.(type) {
	case []byte:
		return x, ctype, nil
	case string:
		return []byte(x), ctype, nil
	}
	data, err := encodeJSON(b, false)
	if err != nil {
		return nil, "", typeError("request body: %v", err)
	}
	return data, ctype, nil
}

// decodeBody turns a response body into a value: JSON decoded, text a
// string, anything else bytes.
func decodeBody(data []byte, ctype string) any {
	if len(data) == 0 {
		return nil
	}
	mt, _, _ := mime.ParseMediaType(ctype)
	switch {
	case mt == "application/json" || strings.HasSuffix(mt, "+json"):
		if v, err := decodeJSON(data); err == nil {
			return v
		}
		return string(data)
	case strings.HasPrefix(mt, "text/"), mt == "application/xml", mt == "application/javascript":
		return string(data)
	}
	return data
}

// connectionError maps a failed request to the exception Workflows raises.
// Cancelling the run is not an exception.
func connectionError(runCtx, reqCtx context.Context, err error) error {
	if runCtx.Err() != nil {
		return runCtx.Err()
	}
	var ne net.Error
	if errors.Is(reqCtx.Err(), context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return raise(errorMap("TimeoutError", "%v", err))
	}
	var op *net.OpError
	var dns *net.DNSError
	if (errors.As(err, &op) && op.Op == "dial") || errors.As(err, &dns) {
		return raise(errorMap("ConnectionFailedError", "%v", err))
	}
	return raise(errorMap("ConnectionError", "%v", err))
}
