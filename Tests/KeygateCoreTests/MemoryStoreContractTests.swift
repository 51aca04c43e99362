import Testing
import Storage
import StoreContracts

/// The router tests stand on the memory stores: they must keep the contract the
/// PostgreSQL stores keep (`StorageTests` run the same one against a real server).
@Suite("Memory stores keep the store contract")
struct MemoryStoreContractTests {
    @Test("the memory key store")
    func keys() {
        let store = MemoryKeyStore()
        #expect(StoreContract.keys(store, actions: { id in store.audit.filter { $0.targetID == id }.map(\.action) }) == [])
    }

    @Test("the memory user store")
    func users() {
        let store = MemoryUserStore()
        #expect(StoreContract.users(store, actions: { id in store.audit.filter { $0.targetID == id }.map(\.action) }) == [])
    }
}
