export { Gateway, type GatewayStartOptions, type GatewayStats } from './gateway.ts';
export { GATEWAY_DEFAULTS, validateGatewayOptions, type GatewayOptions } from './options.ts';
export { VERSION } from './version.ts';
