import ArgumentParser
import KeygateCore
import Posix

/// `keygate symbols …`: the tracked-symbol watchlist on the host.
struct Symbols: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Add, list, show or remove tracked symbols (direct database access).",
        subcommands: [Add.self, List.self, Show.self, Remove.self]
    )

    static func print(_ views: [OperatorActions.SymbolView], json: Bool, single: Bool = false) {
        OperatorOutput.print(views, json: json, single: single)
    }

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Track a symbol (re-adding a removed one reactivates it).")
        @OptionGroup var options: GlobalOptions
        @OptionGroup var output: Keys.Output
        @Argument(help: "The symbol (AAPL, BRK.B, BTC, BTC-USD, X:BTCUSD).") var symbol: String
        @Option(help: "stock, crypto or etf.") var assetClass: String

        func run() throws {
            let (view, reactivated) = try Keys.run(options) { try $0.addSymbol(symbol, assetClass: assetClass) }
            if reactivated && !output.json { StandardError.write("reactivated (its history is kept)") }
            Symbols.print([view], json: output.json, single: true)
        }
    }

    struct List: ParsableCommand {
        @OptionGroup var options: GlobalOptions
        @OptionGroup var output: Keys.Output
        @Option(help: "true, false or all.") var active = "true"
        @Option(help: "stock, crypto or etf.") var assetClass: String?
        @Option(help: "pending, in_progress, completed or failed.") var backfillStatus: String?
        @Option(help: "At most this many (1-500).") var limit = 500
        @Option(help: "The next page: the cursor the previous page gave.") var cursor: String?

        func validate() throws {
            guard ["true", "false", "all"].contains(active) else { throw ValidationError("--active must be true, false or all") }
            guard (1...500).contains(limit) else { throw ValidationError("--limit must be 1 to 500") }
        }

        func run() throws {
            let flag: Bool? = active == "all" ? nil : active == "true"
            OperatorOutput.print(try Keys.run(options) {
                try $0.listSymbols(active: flag, assetClass: assetClass, backfillStatus: backfillStatus, limit: limit, cursor: cursor)
            }, json: output.json)
        }
    }

    struct Show: ParsableCommand {
        @OptionGroup var options: GlobalOptions
        @OptionGroup var output: Keys.Output
        @Argument var symbol: String
        func run() throws { Symbols.print([try Keys.run(options) { try $0.showSymbol(symbol) }], json: output.json, single: true) }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop tracking a symbol (soft delete: history kept).")
        @OptionGroup var options: GlobalOptions
        @OptionGroup var output: Keys.Output
        @Argument var symbol: String
        func run() throws { Symbols.print([try Keys.run(options) { try $0.removeSymbol(symbol) }], json: output.json, single: true) }
    }
}
