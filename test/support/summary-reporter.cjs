// mocha's spec reporter, plus the closing line CI reads: "N passed, N failed" (", N skipped" when some were),
// alone on the last line. CommonJS because mocha loads reporters with require().
'use strict';
const Mocha = require('mocha');

const { EVENT_RUN_END } = Mocha.Runner.constants;

class SummaryReporter extends Mocha.reporters.Spec {
  constructor(runner, options) {
    super(runner, options);
    runner.once(EVENT_RUN_END, () => {
      // After the spec reporter's own epilogue, which listens for the same event and was registered first.
      const { passes, failures, pending } = this.stats;
      const skipped = pending > 0 ? `, ${pending} skipped` : '';
      process.stdout.write(`${passes} passed, ${failures} failed${skipped}\n`);
      // Tests must clean up after themselves: if something still keeps the process alive well after the run,
      // say what (to stderr, so the summary stays the last line of stdout) and exit rather than hang CI.
      setTimeout(() => {
        process.stderr.write(`leaked handles keep the test process alive: ${process.getActiveResourcesInfo().join(', ')}\n`);
        process.exit(failures > 0 ? 1 : 3);
      }, 15_000).unref();
    });
  }
}

module.exports = SummaryReporter;
