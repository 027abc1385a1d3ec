/**
 * The errors ingress hands aedes and the device link hands grpc-js: typed, with `name` and `cause`, and carrying
 * what those libraries read from them (aedes: returnCode; grpc-js: code and details).
 */
import assert from 'node:assert/strict';
import { status } from '@grpc/grpc-js';
import { FleetgateError } from '@fleetgate/core';
import {
  ConnectRefusedError,
  DeviceDisconnectedError,
  DeviceLinkRefusedError,
  DeviceStreamError,
  GatewayShutdownError,
  NotAuthenticatedError,
  PublishRefusedError,
} from '../../gateway/src/errors.ts';

describe('refusal errors', function () {
  it('refusal errors - a refused CONNECT carries its reason and the return code aedes writes into the CONNACK', () => {
    const cause = new Error('verifier down');
    const err = new ConnectRefusedError('token-malformed', 3, 'authentication failed: verifier down', { cause });
    assert.ok(err instanceof FleetgateError);
    assert.equal(err.name, 'ConnectRefusedError');
    assert.equal(err.reason, 'token-malformed');
    assert.equal(err.returnCode, 3);
    assert.equal(err.message, 'authentication failed: verifier down');
    assert.equal(err.cause, cause);
  });

  it('refusal errors - a refused PUBLISH names its reason; the journal error is its cause', () => {
    const full = new Error('journal full');
    const err = new PublishRefusedError('journal-full', 'journal full', { cause: full });
    assert.equal(err.name, 'PublishRefusedError');
    assert.equal(err.message, 'publish refused (journal-full): journal full');
    assert.equal(err.cause, full);
    assert.equal(new PublishRefusedError('publish-denied', 'devices/d2/telemetry').cause, undefined);
    assert.equal(new NotAuthenticatedError('d1').name, 'NotAuthenticatedError');
  });

  it("refusal errors - a device-link refusal takes its reason's status from the table, unless told otherwise", () => {
    const refused = new DeviceLinkRefusedError('too-many-connections', '10 devices connected');
    assert.ok(refused instanceof DeviceStreamError);
    assert.equal(refused.name, 'DeviceLinkRefusedError');
    assert.equal(refused.code, status.RESOURCE_EXHAUSTED);
    assert.equal(refused.details, '10 devices connected');
    assert.equal(refused.message, '10 devices connected');
    const early = new DeviceLinkRefusedError('protocol', 'the first frame must be Hello', { code: status.FAILED_PRECONDITION });
    assert.equal(early.code, status.FAILED_PRECONDITION);
    const cause = new Error('disk I/O error');
    assert.equal(new DeviceLinkRefusedError('journal-unavailable', 'journal unavailable', { cause }).cause, cause);
  });

  it('refusal errors - streams the gateway ends: token expired or revoked, taken over, shutting down', () => {
    const statuses = (['token-expired', 'token-revoked', 'taken-over'] as const).map((reason) => {
      const err = new DeviceDisconnectedError(reason);
      assert.equal(err.name, 'DeviceDisconnectedError');
      return [status[err.code], err.details];
    });
    assert.deepEqual(statuses, [
      ['UNAUTHENTICATED', 'device token expired: reconnect with a fresh one'],
      ['PERMISSION_DENIED', 'device token revoked'],
      ['ABORTED', 'the same device connected again'],
    ]);
    const shutdown = new GatewayShutdownError();
    assert.equal(shutdown.name, 'GatewayShutdownError');
    assert.equal(shutdown.code, status.UNAVAILABLE);
    assert.equal(shutdown.details, 'the gateway is shutting down');
  });
});
