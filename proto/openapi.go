// Package proto holds the product's API definitions. The generated Go code lives in gen/ and is
// imported under fixed aliases (gatewayv1, agentdv1, sandboxdv1); this package only ships the merged
// OpenAPI document generated alongside it, so the gateway can serve it without reading the disk.
package proto

import _ "embed"

// OpenAPI is the OpenAPI (Swagger 2.0) document of the whole public REST API.
//
//go:embed gen/openapi/mgx.swagger.json
var OpenAPI []byte
