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
    });
  }
}

module.exports = SummaryReporter;
