/** A cloud-stub and a gateway in this process, on real sockets at port 0, with their data in `dir`. */
import { join } from 'node:path';
import { CloudStub, type CloudStubOptions } from '@fleetgate/cloud-stub';
import { Gateway, GATEWAY_DEFAULTS, type GatewayOptions, type UpstreamOptions } from '@fleetgate/gateway';

export interface InProcessStack {
  cloud: CloudStub;
  gateway: Gateway;
  close(): Promise<void>;
}

/** `options.upstream`: TLS and token of the one upstream, the cloud-stub started here. */
export async function startInProcess(
  dir: string,
  { upstream, ...options }: Partial<GatewayOptions> & { upstream?: Omit<UpstreamOptions, 'name' | 'addresses'> } = {},
  cloudOptions: Partial<CloudStubOptions> = {},
): Promise<InProcessStack> {
  const cloud = await CloudStub.start({
    listen: { host: '127.0.0.1', port: 0 },
    admin: { host: '127.0.0.1', port: 0 },
    dataDir: join(dir, 'cloud'),
    durability: 'process',
    ...cloudOptions,
  });
  let gateway: Gateway;
  try {
    gateway = await Gateway.start({
      ...GATEWAY_DEFAULTS,
      gatewayId: 'gw-test',
      mqtt: { host: '127.0.0.1', port: 0 },
      deviceGrpc: { host: '127.0.0.1', port: 0 },
      admin: { host: '127.0.0.1', port: 0 },
      upstreams: [{ name: 'default', addresses: [`127.0.0.1:${cloud.address.port}`], ...upstream }],
      dataDir: join(dir, 'gateway'),
      durability: 'process',
      allowAnonymous: true,
      logLevel: 'silent',
      ...options,
    });
  } catch (err: unknown) {
    await cloud.close();
    throw err;
  }
  return {
    cloud,
    gateway,
    close: async () => {
      await gateway.close();
      await cloud.close();
    },
  };
}
