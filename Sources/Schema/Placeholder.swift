public let migrationProbe = PackageResources._001_test_sql.count
