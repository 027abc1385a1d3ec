// The public surface of @fleetgate/protos: the generated fleetgate.v1 types, codecs and grpc-js service
// definitions. Everything under src/gen/ is made by `npm run generate`; never edit it by hand.
export * from './gen/fleetgate/v1/commands.ts';
export * from './gen/fleetgate/v1/device.ts';
export * from './gen/fleetgate/v1/uplink.ts';
