// Package atlasgate is the root of the atlasgate module. Importing it (as the
// xcaddy build and cmd/caddy do) plugs every atlasgate Caddy module in, the way
// Caddy's modules/standard does for the standard modules.
package atlasgate

import (
	_ "github.com/atlasgate/atlasgate/modules/atlasgate"
	_ "github.com/atlasgate/atlasgate/modules/authhandler"
	_ "github.com/atlasgate/atlasgate/modules/authn/apikey"
	_ "github.com/atlasgate/atlasgate/modules/authn/clientcert"
	_ "github.com/atlasgate/atlasgate/modules/authn/jwt"
	_ "github.com/atlasgate/atlasgate/modules/authn/opaque"
	_ "github.com/atlasgate/atlasgate/modules/console"
	_ "github.com/atlasgate/atlasgate/modules/credentials"
	_ "github.com/atlasgate/atlasgate/modules/handover"
	_ "github.com/atlasgate/atlasgate/modules/logbuffer"
	_ "github.com/atlasgate/atlasgate/modules/policy"
	_ "github.com/atlasgate/atlasgate/modules/proxy"
	_ "github.com/atlasgate/atlasgate/modules/storage/redis"
)
