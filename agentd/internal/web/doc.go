// Package web gives agents the web: web_search through a pluggable Provider (SearXNG's JSON API,
// the Brave Search API or Tavily) and fetch_url, which reads a page as text with its links as
// citations.
//
// # Configuration (environment)
//
// web_search (SearchConfig):
//
//	AGENTD_SEARCH_PROVIDER     auto | searxng | brave | tavily | none   (default auto: the first
//	                           configured of SearXNG, Brave, Tavily; none configured → no web_search)
//	SEARXNG_URL                base URL of a SearXNG instance with the json format enabled
//	BRAVE_API_KEY              Brave Search API subscription token (secret)
//	BRAVE_BASE_URL             default https://api.search.brave.com
//	TAVILY_API_KEY             Tavily API key (secret)
//	TAVILY_BASE_URL            default https://api.tavily.com
//	AGENTD_SEARCH_MAX_RESULTS  default 10 (at most 20)
//	AGENTD_SEARCH_TIMEOUT      default 15s
//
// fetch_url (FetchConfig):
//
//	AGENTD_FETCH_TIMEOUT         default 20s (connect, redirects and body)
//	AGENTD_FETCH_MAX_BYTES       default 5242880 (body cap after decompression)
//	AGENTD_FETCH_MAX_REDIRECTS   default 5
//	AGENTD_FETCH_MAX_TEXT_CHARS  default 20000 (readable text per call; more with an offset)
//	AGENTD_FETCH_ALLOW           comma-separated ip:port, IP or CIDR exempt from the address guard
//	                             (default empty: only public internet addresses)
//	AGENTD_FETCH_USER_AGENT      default "Mozilla/5.0 (compatible; mgx-agentd/1.0; fetch_url)"
//
// # Address guard
//
// fetch_url runs on agentd's host, next to Redis, sandboxd and the cloud metadata endpoint, on a
// URL a model chose (possibly steered by a page it read). Every connection is checked when it is
// dialled, on the address it really goes to — after DNS resolution and for every redirect hop — so
// neither a name resolving (or rebinding) to an internal address nor a redirect reaches one:
// loopback, private (RFC 1918, IPv6 ULA), link-local (169.254.0.0/16 with the metadata address,
// fe80::/10), carrier-grade NAT, unspecified, multicast, broadcast, reserved and documentation
// ranges, and IPv6 forms embedding any of those, are refused unless AGENTD_FETCH_ALLOW lists them.
// Proxies are not used, since through one the guard would only see the proxy.
//
// Search providers are configured by the operator and are reached without the guard (a SearXNG
// on the private network is the usual deployment).
package web
