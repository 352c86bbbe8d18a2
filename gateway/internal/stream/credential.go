package stream

import (
	"net/http"
	"strings"
)

// BearerProtocol is the WebSocket subprotocol that carries an access token where a browser cannot
// send an Authorization header. A browser offers it followed by the token,
//
//	new WebSocket(url, ["mgx.bearer", accessToken])
//
// which it sends as `Sec-WebSocket-Protocol: mgx.bearer, <token>`; the server selects (echoes)
// BearerProtocol and never the token — a browser drops a connection whose server selects no
// offered protocol. Unlike `?token=`, the token stays out of URLs, so out of access logs and proxy
// logs too.
const BearerProtocol = "mgx.bearer"

// SubprotocolToken returns the token a WebSocket handshake offers after BearerProtocol in
// Sec-WebSocket-Protocol, or "" when it offers none. Only an upgrade request carries one: on any
// other request the header means nothing and is not a credential.
func SubprotocolToken(r *http.Request) string {
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		return ""
	}
	var offered []string
	for _, v := range r.Header.Values("Sec-WebSocket-Protocol") {
		for p := range strings.SplitSeq(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				offered = append(offered, p)
			}
		}
	}
	for i, p := range offered {
		if strings.EqualFold(p, BearerProtocol) && i+1 < len(offered) {
			return offered[i+1]
		}
	}
	return ""
}
