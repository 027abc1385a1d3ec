/**
 * One mechanism for every long-running command. Each setting is a long flag (`--journal-max-bytes`), an
 * environment variable (`FLEETGATE_JOURNAL_MAX_BYTES`: FLEETGATE_ and the flag upper-snake) and a key of the
 * `--config` file (`journal-max-bytes:`). Flags win over variables, variables over the file, the file over the
 * built-in default.
 *
 * Commander parses the flags; `Settings.layer` then fills every option the flags left alone, from the
 * environment, else from the file, through that option's own parser and choices, so that a value means the same
 * and is refused with the same words wherever it is written, and each refusal names where it was written:
 * `--flag`, `FLEETGATE_FLAG` or `file: key`.
 *
 * The environment is read here rather than by commander's Option.env() for two reasons: commander reads
 * process.env only (tests pass their own), and it turns a boolean on when its variable merely exists, so
 * FLEETGATE_ALLOW_ANONYMOUS=false would allow anonymous devices. Here a boolean takes true or false only.
 */
import { Help, InvalidArgumentError, Option, type Command } from 'commander';
import { ConfigError } from '@fleetgate/core';
import { loadConfigFile, pathInFile, show, unknownKey, type ConfigFile } from './config-file.ts';

export type Source = 'cli' | 'env' | 'config' | 'default';

/** The variable that names the config file when --config is not given. */
export const CONFIG_ENV = 'FLEETGATE_CONFIG';

/** Long options that are not settings. */
const NOT_SETTINGS = new Set(['config', 'help', 'version']);

/** "journal-max-bytes" -> "FLEETGATE_JOURNAL_MAX_BYTES" */
export function envName(key: string): string {
  return `FLEETGATE_${key.toUpperCase().replaceAll('-', '_')}`;
}

/** The setting an option is, by its long name without `--`; undefined for --config, --help, --version. */
export function settingKey(option: Option): string | undefined {
  const key = option.long?.replace(/^--/, '');
  return key !== undefined && !NOT_SETTINGS.has(key) ? key : undefined;
}

/** The settings of a command: its long options, and the file-only keys it accepts besides. */
export function settingKeys(command: Command): string[] {
  return command.options.map(settingKey).filter((key): key is string => key !== undefined);
}

/** Adds --config to `command` (`more`: what else its help says of the file) and shows each setting's variable in --help. */
export function withConfigFile(command: Command, more: string): Command {
  return command
    .addOption(
      new Option('--config <file>', `YAML file of settings: its keys are these flags without --${more} (env ${CONFIG_ENV})`),
    )
    .configureHelp({
      optionDescription(this: Help, option: Option): string {
        const key = settingKey(option);
        // A copy that carries the variable's name, so that commander prints it as "(default: ..., env: ...)".
        const shown = key ? Object.assign(Object.create(Option.prototype) as Option, option, { envVar: envName(key) }) : option;
        return Help.prototype.optionDescription.call(this, shown);
      },
    })
    .addHelpText(
      'after',
      '\nEvery setting is a flag, a FLEETGATE_* variable (shown with each flag) and a key of the --config file;\n' +
        'flags override variables, variables override the file. Check a file without starting: fleetgate config check FILE',
    );
}

/** Parses `argv` (the words after the command's name) without printing or exiting: a bad flag throws a CommanderError. */
export function parseFlags(command: Command, argv: readonly string[]): Command {
  return command
    .exitOverride()
    .configureOutput({ writeOut: () => {}, writeErr: () => {} })
    .parse([...argv], { from: 'user' });
}

export class Settings {
  private readonly options = new Map<string, Option>();

  private constructor(
    private readonly command: Command,
    /** The config file, if one was given (--config or FLEETGATE_CONFIG). */
    readonly file: ConfigFile | undefined,
    private readonly fileOnly: readonly string[],
  ) {
    for (const option of command.options) {
      const key = settingKey(option);
      if (key) this.options.set(key, option);
    }
  }

  /**
   * After commander parsed the flags of `command`: reads the config file and fills in the environment's and the
   * file's values. `fileOnly` are the keys the file may have besides the flags (lists, read by the caller).
   */
  static layer(command: Command, env: NodeJS.ProcessEnv, fileOnly: readonly string[] = []): Settings {
    const configPath = (command.getOptionValue('config') as string | undefined) ?? nonEmpty(env[CONFIG_ENV]);
    const file = configPath !== undefined ? loadConfigFile(configPath) : undefined;
    const settings = new Settings(command, file, fileOnly);
    // Every mistake of this stage at once: a file with three typos is fixed in one round.
    const problems: ConfigError[] = [];
    if (file) {
      const known = [...settings.options.keys(), ...fileOnly];
      for (const key of file.entries.keys()) {
        if (!known.includes(key)) problems.push(unknownKey(`${file.path}: ${key}`, key, known));
      }
    }
    for (const [key, option] of settings.options) {
      if (settings.source(key) === 'cli') continue;
      const attribute = option.attributeName();
      const fromEnv = nonEmpty(env[envName(key)]);
      try {
        if (fromEnv !== undefined) {
          setIfDefined(command, attribute, fromString(option, fromEnv, envName(key)), 'env');
        } else if (file && file.entries.get(key) != null) {
          setIfDefined(command, attribute, fromFile(option, file.entries.get(key), `${file.path}: ${key}`, file), 'config');
        }
      } catch (err: unknown) {
        if (!(err instanceof ConfigError)) throw err;
        problems.push(err);
      }
    }
    if (problems.length > 0) throw joinProblems(problems);
    return settings;
  }

  get<T>(key: string): T {
    return this.command.getOptionValue(this.option(key).attributeName()) as T;
  }

  /** Where the value of `key` came from: a flag, a variable, the file, the built-in default (undefined: none). */
  source(key: string): Source | undefined {
    return this.command.getOptionValueSource(this.option(key).attributeName()) as Source | undefined;
  }

  /** Whether the value of `key` was written somewhere (flag, variable or file), not left at the default. */
  given(key: string): boolean {
    const source = this.source(key);
    return source === 'cli' || source === 'env' || source === 'config';
  }

  /** How a message names `key`: where its value was written, the flag when it was not. */
  field(key: string): string {
    if (!this.options.has(key)) return this.file?.entries.has(key) ? `${this.file.path}: ${key}` : key;
    switch (this.source(key)) {
      case 'env':
        return envName(key);
      case 'config':
        return `${this.file!.path}: ${key}`;
      default:
        return `--${key}`;
    }
  }

  /**
   * A ConfigError whose field is a setting ("--gateway-id", "forget-upstreams", "upstreams[1].address"), renamed to
   * where that setting was written; anything else unchanged. Checks written in terms of flags then speak of the
   * file or the variable when that is where the value is.
   */
  rename(err: unknown): unknown {
    if (!(err instanceof ConfigError)) return err;
    const message = messageOf(err);
    const key = err.field.replace(/^--/, '');
    if (this.options.has(key)) {
      const field = this.field(key);
      return field === err.field ? err : new ConfigError(field, message);
    }
    const listKey = this.fileOnly.find(
      (name) => err.field === name || err.field.startsWith(`${name}[`) || err.field.startsWith(`${name}.`),
    );
    if (listKey && this.file?.entries.has(listKey)) return new ConfigError(`${this.file.path}: ${err.field}`, message);
    return err;
  }

  private option(key: string): Option {
    const option = this.options.get(key);
    if (!option) throw new Error(`no setting ${key}`);
    return option;
  }
}

/** Several refusals as one ConfigError (named after the first), one per line. */
export function joinProblems([first, ...more]: ConfigError[]): ConfigError {
  if (!first) throw new Error('no problems to join');
  return more.length === 0
    ? first
    : new ConfigError(first.field, [messageOf(first), ...more.map((problem) => problem.message)].join('\n'));
}

/** A ConfigError's message without its field. */
function messageOf(err: ConfigError): string {
  return err.message.slice(err.field.length + 2);
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}

/** Unset stays unset: `--mqtts` given as false (an optional value, off) keeps its default. */
function setIfDefined(command: Command, attribute: string, value: unknown, source: Source): void {
  if (value !== undefined) command.setOptionValueWithSource(attribute, value, source);
}

/** A value written as text (a variable), through the option's choices and parser. */
function fromString(option: Option, text: string, field: string): unknown {
  if (option.isBoolean()) {
    if (text === 'true') return true;
    if (text === 'false') return false;
    throw new ConfigError(field, `${JSON.stringify(text)} is not true or false`);
  }
  // An optional value (`--mqtts [host:port]`): true is the flag alone, false is the flag absent.
  if (option.optional && (text === 'true' || text === 'false')) return text === 'true' ? (option.presetArg ?? true) : undefined;
  if (option.argChoices && !option.argChoices.includes(text)) {
    throw new ConfigError(field, `${JSON.stringify(text)} is not one of ${option.argChoices.join(', ')}`);
  }
  if (!option.parseArg) return text;
  try {
    return option.parseArg(text, option.defaultValue as unknown);
  } catch (err: unknown) {
    if (err instanceof InvalidArgumentError || err instanceof ConfigError) {
      throw new ConfigError(field, err instanceof ConfigError ? messageOf(err) : err.message);
    }
    throw err;
  }
}

/** A value from the YAML file: scalars as their text, a list as its items joined by commas (address lists). */
function fromFile(option: Option, value: unknown, field: string, file: ConfigFile): unknown {
  if (option.isBoolean() || (option.optional && typeof value === 'boolean')) {
    if (typeof value !== 'boolean') throw new ConfigError(field, `${show(value)} is not true or false`);
    return fromString(option, String(value), field);
  }
  let text: string;
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') text = String(value);
  else if (Array.isArray(value) && value.every((item) => typeof item === 'string' || typeof item === 'number'))
    text = value.join(',');
  else throw new ConfigError(field, `${show(value)} is not a value for ${option.flags}`);
  // Paths in the file are relative to the file's folder, wherever the command is started from.
  if (/<(file|dir)>/.test(option.flags)) text = pathInFile(file, text);
  return fromString(option, text, field);
}
