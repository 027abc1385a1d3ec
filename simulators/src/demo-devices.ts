/**
 * The demo devices of `fleetgate dev` (the local stack `npm start` runs): a few mqtt.js clients publishing
 * QoS 1 telemetry with their tokens and answering the "ping" command.
 */
import mqtt from 'mqtt';

/** Demo devices publishing QoS 1 telemetry; returns a function that disconnects them. */
export function startDemoDevices(host: string, port: number, tokens: string[], rate: number): () => Promise<void> {
  const clients = tokens.map((token, i) => {
    const id = `demo-${i + 1}`;
    const client = mqtt.connect({
      host,
      port,
      clientId: id,
      username: id,
      password: token,
      protocolVersion: 4,
      reconnectPeriod: 1000,
    });
    // Commands arrive on devices/{id}/commands/{name}/{commandId}; answers go to devices/{id}/command-results/{commandId}.
    client.on('message', (topic, payload) => {
      const [, , kind, name, commandId] = topic.split('/');
      if (kind !== 'commands' || !commandId) return;
      const answer =
        name === 'ping'
          ? { status: 'succeeded', payload: { pong: JSON.parse(payload.toString() || 'null'), from: id } }
          : { status: 'rejected', message: `demo devices only answer "ping"` };
      client.publish(`devices/${id}/command-results/${commandId}`, JSON.stringify(answer), { qos: 1 });
    });
    let n = 0;
    const timer = setInterval(() => {
      if (!client.connected) return;
      const payload = JSON.stringify({ n: ++n, temp: +(20 + 5 * Math.sin(n / 10 + i)).toFixed(2), at: new Date().toISOString() });
      client.publish(`devices/${id}/telemetry`, payload, { qos: 1 });
    }, 1000 / rate);
    return { client, timer };
  });
  return async () => {
    for (const { timer } of clients) clearInterval(timer);
    await Promise.all(clients.map(({ client }) => client.endAsync()));
  };
}
