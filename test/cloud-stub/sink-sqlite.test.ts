import assert from 'node:assert/strict';
import { exportSqliteSink, readSqliteSinkStats, SqliteSink, ThreadedSink } from '@fleetgate/cloud-stub';
import { useTempDir } from '../support/temp-dir.ts';
import { sinkContract, sinkRecord } from './sink.contract.ts';

sinkContract('sqlite', (dir) => new SqliteSink({ dir, durability: 'power' }));
sinkContract('sqlite on its own thread', (dir) => ThreadedSink.open(dir, 'power'));

describe('sink (sqlite)', function () {
  const dir = useTempDir();

  it('sink - export and stats read through their own connection while the sink is open', async () => {
    const sink = new SqliteSink({ dir: dir.path, durability: 'process' });
    await sink.commit([{ gatewayId: 'gw', records: [sinkRecord(1), sinkRecord(2)] }]);
    const iterator = exportSqliteSink(dir.path);
    assert.equal(iterator.next().value?.seq, 1);
    // A commit while an export is half read must not be blocked by it.
    await sink.commit([{ gatewayId: 'gw', records: [sinkRecord(3)] }]);
    assert.equal(iterator.next().value?.seq, 2);
    iterator.return(undefined);
    assert.equal(readSqliteSinkStats(dir.path).records, 3);
    await sink.close();
  });

  it('sink - exporting a folder with no sink fails with the file named', () => {
    assert.throws(() => [...exportSqliteSink(dir.path)], /unable to open database file/);
  });
});
