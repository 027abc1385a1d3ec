export { Gateway, type GatewayStartOptions, type GatewayStats } from './gateway.ts';
export { GATEWAY_DEFAULTS, validateGatewayOptions, type GatewayOptions, type RouteOptions, type UpstreamOptions } from './options.ts';
export { VERSION } from './version.ts';
