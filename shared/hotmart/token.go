package hotmart

import (
	"context"
	"net/http"
	"time"
)

// DefaultTokenLifetime is the lifetime assumed for a token whose answer
// gives none.
const DefaultTokenLifetime = 10 * time.Minute

// tokenBody is the token endpoint's answer.
type tokenBody struct {
	AccessToken string  `json:"access_token"`
	ExpiresIn   float64 `json:"expires_in"` // seconds
}

// accessToken returns the cached token, fetching a new one when there is
// none or it is about to expire. Concurrent callers share one fetch.
func (c *Client) accessToken(ctx context.Context) (string, error) {
	if tok, ok := c.cachedToken(); ok {
		return tok, nil
	}
	select {
	case c.tokenSem <- struct{}{}:
	case <-ctx.Done():
		return "", context.Cause(ctx)
	}
	defer func() { <-c.tokenSem }()
	if tok, ok := c.cachedToken(); ok { // fetched while we waited
		return tok, nil
	}

	u := *c.tokenURL
	q := u.Query()
	q.Set("grant_type", "client_credentials")
	q.Set("client_id", c.cfg.ClientID)
	q.Set("client_secret", c.cfg.ClientSecret)
	u.RawQuery = q.Encode()
	shown := *c.tokenURL
	shown.RawQuery = ""

	var tb tokenBody
	req := request{call: "fetch access token", method: http.MethodPost, url: u.String(), logURL: shown.String()}
	if err := c.do(ctx, req, &tb); err != nil {
		return "", err
	}
	if tb.AccessToken == "" {
		return "", c.classify(req, &APIError{Call: req.call, Method: req.method, URL: req.logURL,
			Status: http.StatusOK, Code: CodeMalformed, Description: "no access_token in the answer"}, 1)
	}
	ttl := time.Duration(tb.ExpiresIn * float64(time.Second))
	if ttl <= 0 {
		// An answer without a lifetime: assume a short one rather than none
		// (which would fetch a token before every call). A token that dies
		// sooner is refreshed once on its 401.
		ttl = DefaultTokenLifetime
		c.log.WarnContext(ctx, "hotmart token answer has no expires_in; assuming a default lifetime", "assumedSeconds", seconds(ttl))
	}
	// Refresh a little before Hotmart's expiry, so a token never expires
	// between being read here and reaching the server.
	margin := min(ttl/10, 5*time.Minute)
	c.tokenMu.Lock()
	c.token, c.tokenExp = tb.AccessToken, c.now().Add(ttl-margin)
	c.tokenMu.Unlock()
	c.log.DebugContext(ctx, "hotmart access token fetched", "expiresInSeconds", seconds(ttl))
	return tb.AccessToken, nil
}

func (c *Client) cachedToken() (string, bool) {
	c.tokenMu.Lock()
	defer c.tokenMu.Unlock()
	if c.token == "" || !c.now().Before(c.tokenExp) {
		return "", false
	}
	return c.token, true
}

// invalidate drops tok after the server refused it, unless another caller
// has already replaced it (so concurrent 401s cause one fetch, not many).
func (c *Client) invalidate(tok string) {
	c.tokenMu.Lock()
	defer c.tokenMu.Unlock()
	if c.token == tok {
		c.token, c.tokenExp = "", time.Time{}
	}
}
