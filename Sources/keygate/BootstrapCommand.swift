import ArgumentParser
import KeygateCore
import Posix

struct BootstrapCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bootstrap",
        abstract: "Migrate, create the first admin key (printed once), seed the core symbols. Safe to re-run."
    )

    @OptionGroup var options: GlobalOptions

    @Flag(help: "Create another admin key even if an active one exists.")
    var force = false

    @Option(help: "Also write the new admin key to this file (mode 0600), for local scripts.")
    var keyFile: String?

    func run() throws {
        let configuration = try options.loadConfiguration()
        let outcome: Bootstrap.Outcome
        do {
            outcome = try Bootstrap.run(configuration: configuration, force: force)
        } catch {
            throw CLIFailure("bootstrap failed: \(error)")
        }
        StandardError.write("migrations applied: \(outcome.appliedMigrations.isEmpty ? "none (current)" : outcome.appliedMigrations.map(String.init).joined(separator: ", "))")
        StandardError.write("core symbols added: \(outcome.seededSymbols)")
        guard let key = outcome.adminKey, let id = outcome.adminKeyID else {
            StandardError.write("an active admin key already exists: none created (use --force for another)")
            return
        }
        // Shown before the file is written: the key is committed, and a file that cannot be
        // written must not make it unrecoverable.
        StandardError.write("admin key \(id) created; it is shown once, store it now:")
        print(key)
        if let keyFile {
            do { try Files.write(key + "\n", to: keyFile, mode: 0o600) } catch { throw CLIFailure("cannot write \(keyFile): \(error) (the key above is active)") }
        }
    }
}
