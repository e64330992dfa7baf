// pgjdbc smoke suite: what a Java application does on connect and in a typical session.
//
// Run by cli/tests/e2e/drivers.rs as a single-file program (`java -cp $STRATA_JDBC_JAR Smoke.java`),
// twice: against a fresh PostgreSQL database and against a fresh `strata up`, with
// STRATA_DRIVERS_DATABASE_URL (postgres://user@host:port/db) and STRATA_DRIVERS_TARGET
// ("postgres" or "strata"). Steps that Strata cannot do yet are declared with gap(...): on Strata
// they must fail with the given SQLSTATE (or "assertion" for a check of this suite that does not
// hold), and the suite fails the day they start working; on PostgreSQL they are ordinary steps.

import java.math.BigDecimal;
import java.net.URI;
import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.ResultSetMetaData;
import java.sql.SQLException;
import java.sql.Savepoint;
import java.sql.Statement;
import java.sql.Types;
import java.time.LocalDate;
import java.time.LocalDateTime;
import java.time.OffsetDateTime;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.UUID;
import java.util.Objects;
import java.util.Properties;

public class Smoke {
    interface Body {
        void run() throws Exception;
    }

    static final class AssertionFailure extends RuntimeException {
        AssertionFailure(String message) {
            super(message);
        }
    }

    static String jdbcUrl;
    static Properties props = new Properties();
    static boolean onStrata;
    static int passed = 0;
    static final List<String> failures = new ArrayList<>();

    static final String CREATE_TABLE = "CREATE TABLE smoke ("
            + " id integer PRIMARY KEY, big bigint NOT NULL, amount numeric(10,2), note text,"
            + " code varchar(16), flag boolean, day date, at timestamp, at_tz timestamptz,"
            + " payload bytea, ratio double precision, token uuid)";
    static final String COLUMNS = "id, big, amount, note, code, flag, day, at, at_tz, payload, ratio, token";
    static final String[] NAMES = COLUMNS.split(", ");
    static final String[] TYPE_NAMES = {
        "int4", "int8", "numeric", "text", "varchar", "bool", "date", "timestamp", "timestamptz", "bytea", "float8",
        "uuid"
    };
    static final int[] SQL_TYPES = {
        Types.INTEGER, Types.BIGINT, Types.NUMERIC, Types.VARCHAR, Types.VARCHAR, Types.BIT, Types.DATE,
        Types.TIMESTAMP, Types.TIMESTAMP, Types.BINARY, Types.DOUBLE, Types.OTHER
    };

    static final Object[][] ROWS = {
        {
            1, (1L << 40) + 7, new BigDecimal("12345678.90"), "hello", "v1", true, LocalDate.of(2024, 2, 29),
            LocalDateTime.of(2024, 2, 29, 12, 34, 56, 123456000),
            OffsetDateTime.of(2024, 2, 29, 12, 34, 56, 654321000, ZoneOffset.UTC), new byte[] {0, 1, (byte) 0xfe, (byte) 0xff},
            1.5, UUID.fromString("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
        },
        {
            2, -(1L << 62), new BigDecimal("-0.01"), "ünïcödé ✓ 'quoted' \\ back", "", false, LocalDate.of(1999, 12, 31),
            LocalDateTime.of(1999, 12, 31, 23, 59, 59), OffsetDateTime.of(2000, 1, 1, 1, 0, 0, 0, ZoneOffset.ofHours(2)),
            new byte[0], -2.5e-300, UUID.fromString("00000000-0000-0000-0000-000000000000")
        },
        {3, 0L, null, null, null, null, null, null, null, null, null, null},
    };

    public static void main(String[] args) throws Exception {
        String url = System.getenv("STRATA_DRIVERS_DATABASE_URL");
        String target = System.getenv("STRATA_DRIVERS_TARGET");
        if (url == null || target == null || !(target.equals("postgres") || target.equals("strata"))) {
            System.err.println("STRATA_DRIVERS_DATABASE_URL and STRATA_DRIVERS_TARGET must be set: "
                    + "run ./scripts/test -E 'test(drivers)'");
            System.exit(2);
        }
        onStrata = target.equals("strata");
        URI uri = URI.create(url);
        jdbcUrl = "jdbc:postgresql://" + uri.getHost() + ":" + uri.getPort() + uri.getPath();
        props.setProperty("user", uri.getUserInfo() == null ? "postgres" : uri.getUserInfo());

        step("connect", Smoke::connect);
        step("create table", () -> {
            try (Connection c = open(); Statement s = c.createStatement()) {
                s.execute(CREATE_TABLE);
                s.execute("CREATE TABLE accounts (id integer PRIMARY KEY, owner text NOT NULL, balance bigint)");
            }
        });
        step("insert with bound parameters", Smoke::insert);
        step("select values and types", Smoke::select);
        step("an integer literal is an int4", Smoke::literalType);
        step("result type of a bigint sum", Smoke::bigintSumType);
        step("result types of aggregates", Smoke::aggregateTypes);
        step("executeBatch update counts", Smoke::batch);
        step("update and delete with parameters", Smoke::updateAndDelete);
        step("transaction commits", Smoke::commit);
        step("transaction rolls back", Smoke::rollback);
        step("savepoints", Smoke::savepoints);
        step("duplicate key sqlstate", Smoke::duplicateKey);
        step("duplicate key names the constraint", Smoke::duplicateKeyConstraint);
        step("syntax error sqlstate", Smoke::syntaxError);
        step("prepared statement reuse", Smoke::preparedReuse);
        step("DatabaseMetaData.getTables", Smoke::metadataTables);
        step("arrays, time and interval", Smoke::arraysAndIntervals);

        System.out.println();
        System.out.println(passed + " passed, " + failures.size() + " failed");
        if (!failures.isEmpty()) {
            System.out.println("failed: " + failures);
            System.exit(1);
        }
    }

    static Connection open() throws SQLException {
        return DriverManager.getConnection(jdbcUrl, props);
    }

    static void step(String name, Body body) {
        try {
            body.run();
            passed++;
            System.out.println("ok - " + name);
        } catch (Throwable e) {
            failures.add(name);
            System.out.println("not ok - " + name);
            e.printStackTrace(System.out);
        }
    }

    /** A step PostgreSQL passes and Strata does not yet: on Strata it must fail as `expected` says. */
    static void gap(String name, String reason, String expected, Body body) {
        if (!onStrata) {
            step(name, body);
            return;
        }
        step(name + " [Strata gap: " + reason + "]", () -> {
            Throwable error = null;
            try {
                body.run();
            } catch (Throwable e) {
                error = e;
            }
            check(error != null, "works on Strata now: remove the gap mark (" + reason + ")");
            String got = error instanceof SQLException ? ((SQLException) error).getSQLState()
                    : error instanceof AssertionFailure ? "assertion" : error.toString();
            if (!expected.equals(got)) {
                throw new AssertionFailure("failed otherwise than expected (" + expected + "): " + error);
            }
            System.out.println("   (fails as expected: " + error.getMessage().lines().findFirst().orElse("") + ")");
        });
    }

    static void check(boolean ok, String message) {
        if (!ok) {
            throw new AssertionFailure(message);
        }
    }

    static void equal(Object got, Object want) {
        boolean same = got instanceof byte[] && want instanceof byte[]
                ? Arrays.equals((byte[]) got, (byte[]) want) : Objects.equals(got, want);
        if (!same) {
            throw new AssertionFailure("expected " + show(want) + " but got " + show(got));
        }
    }

    static String show(Object o) {
        if (o instanceof byte[]) {
            return Arrays.toString((byte[]) o);
        }
        if (o instanceof List) {
            return ((List<?>) o).stream().map(Smoke::show).toList().toString();
        }
        return o == null ? "null" : o + " (" + o.getClass().getSimpleName() + ")";
    }

    static void expectSqlState(String state, Body body) throws Exception {
        try {
            body.run();
        } catch (SQLException e) {
            equal(e.getSQLState(), state);
            return;
        }
        throw new AssertionFailure("expected an error with SQLSTATE " + state);
    }

    static Object scalar(Connection c, String sql, Object... params) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement(sql)) {
            for (int i = 0; i < params.length; i++) {
                ps.setObject(i + 1, params[i]);
            }
            try (ResultSet rs = ps.executeQuery()) {
                check(rs.next(), "no row");
                return rs.getObject(1);
            }
        }
    }

    static void connect() throws Exception {
        try (Connection c = open()) {
            DatabaseMetaData md = c.getMetaData();
            check(md.getDatabaseMajorVersion() >= 15, "server version " + md.getDatabaseProductVersion());
            equal(intOf(scalar(c, "SELECT 1")), 1);
            equal(c.getTransactionIsolation(), Connection.TRANSACTION_READ_COMMITTED);
            check(c.isValid(5), "isValid");
        }
    }

    static void insert() throws Exception {
        try (Connection c = open();
                PreparedStatement ps = c.prepareStatement(
                        "INSERT INTO smoke (" + COLUMNS + ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")) {
            for (Object[] row : ROWS) {
                ps.setInt(1, (Integer) row[0]);
                ps.setLong(2, (Long) row[1]);
                if (row[2] == null) {
                    ps.setNull(3, Types.NUMERIC);
                    ps.setNull(4, Types.VARCHAR);
                    ps.setNull(5, Types.VARCHAR);
                    ps.setNull(6, Types.BOOLEAN);
                    ps.setNull(7, Types.DATE);
                    ps.setNull(8, Types.TIMESTAMP);
                    ps.setNull(9, Types.TIMESTAMP_WITH_TIMEZONE);
                    ps.setNull(10, Types.BINARY);
                    ps.setNull(11, Types.DOUBLE);
                    ps.setNull(12, Types.OTHER);
                } else {
                    ps.setBigDecimal(3, (BigDecimal) row[2]);
                    ps.setString(4, (String) row[3]);
                    ps.setString(5, (String) row[4]);
                    ps.setBoolean(6, (Boolean) row[5]);
                    ps.setObject(7, row[6]);
                    ps.setObject(8, row[7]);
                    ps.setObject(9, row[8]);
                    ps.setBytes(10, (byte[]) row[9]);
                    ps.setDouble(11, (Double) row[10]);
                    ps.setObject(12, row[11]);
                }
                equal(ps.executeUpdate(), 1);
            }
            equal(scalar(c, "SELECT count(*) FROM smoke"), 3L);
        }
    }

    static void literalType() throws Exception {
        try (Connection c = open()) {
            equal(Arrays.asList(scalar(c, "SELECT 1"), scalar(c, "SELECT 3000000000")),
                    Arrays.asList(1, 3000000000L));
        }
    }

    static void bigintSumType() throws Exception {
        try (Connection c = open()) {
            equal(scalar(c, "SELECT sum(big) FROM smoke"), new BigDecimal((1L << 40) + 7 - (1L << 62)));
        }
    }

    static void aggregateTypes() throws Exception {
        try (Connection c = open()) {
            List<Object> got = Arrays.asList(scalar(c, "SELECT avg(id) FROM smoke WHERE id <= 2"),
                    scalar(c, "SELECT sum(id) FROM smoke"));
            equal(got, Arrays.asList(new BigDecimal("1.5000000000000000"), 6L));
        }
    }

    static void batch() throws Exception {
        try (Connection c = open()) {
            try (Statement s = c.createStatement()) {
                s.execute("CREATE TABLE batched (id integer PRIMARY KEY, name text)");
            }
            try (PreparedStatement ps = c.prepareStatement("INSERT INTO batched VALUES (?, ?)")) {
                for (int i = 1; i <= 3; i++) {
                    ps.setInt(1, i);
                    ps.setString(2, "row " + i);
                    ps.addBatch();
                }
                equal(Arrays.toString(ps.executeBatch()), "[1, 1, 1]");
            }
            equal(scalar(c, "SELECT count(*) FROM batched"), 3L);
        }
    }

    static int intOf(Object o) {
        return ((Number) o).intValue();
    }

    static void select() throws Exception {
        try (Connection c = open();
                PreparedStatement ps = c.prepareStatement("SELECT " + COLUMNS + " FROM smoke ORDER BY id");
                ResultSet rs = ps.executeQuery()) {
            ResultSetMetaData md = rs.getMetaData();
            equal(md.getColumnCount(), NAMES.length);
            for (int i = 0; i < NAMES.length; i++) {
                equal(md.getColumnName(i + 1), NAMES[i]);
                equal(md.getColumnTypeName(i + 1), TYPE_NAMES[i]);
                equal(md.getColumnType(i + 1), SQL_TYPES[i]);
            }
            for (Object[] row : ROWS) {
                check(rs.next(), "missing row " + row[0]);
                equal(rs.getInt(1), row[0]);
                equal(rs.getLong(2), row[1]);
                equal(rs.getBigDecimal(3), row[2]);
                equal(rs.getString(4), row[3]);
                equal(rs.getString(5), row[4]);
                equal(rs.getObject(6), row[5]);
                equal(rs.getObject(7, LocalDate.class), row[6]);
                equal(rs.getObject(8, LocalDateTime.class), row[7]);
                OffsetDateTime tz = rs.getObject(9, OffsetDateTime.class);
                check(row[8] == null ? tz == null : ((OffsetDateTime) row[8]).isEqual(tz), "at_tz " + tz);
                equal(rs.getBytes(10), row[9]);
                equal(rs.getObject(11), row[10]);
                equal(rs.getObject(12), row[11]);
                check(rs.getObject(4) instanceof String || row[3] == null, "text as String");
                check(rs.getObject(2) instanceof Long, "int8 as Long");
                check(rs.getObject(3) == null || rs.getObject(3) instanceof BigDecimal, "numeric as BigDecimal");
            }
            check(!rs.next(), "extra rows");
            equal(scalar(c, "SELECT note FROM smoke WHERE id = ?", 2), ROWS[1][3]);
            equal(scalar(c, "SELECT id FROM smoke WHERE big > ? ORDER BY id", 0L), 1);
        }
    }

    static void updateAndDelete() throws Exception {
        try (Connection c = open()) {
            try (PreparedStatement ps = c.prepareStatement("UPDATE smoke SET note = ?, amount = amount + ? WHERE id = ?")) {
                ps.setString(1, "changed");
                ps.setBigDecimal(2, BigDecimal.ONE);
                ps.setInt(3, 1);
                equal(ps.executeUpdate(), 1);
            }
            equal(scalar(c, "SELECT amount FROM smoke WHERE id = ?", 1), new BigDecimal("12345679.90"));
            try (PreparedStatement ps = c.prepareStatement("DELETE FROM smoke WHERE id = ?")) {
                ps.setInt(1, 3);
                equal(ps.executeUpdate(), 1);
                equal(ps.executeUpdate(), 0);
            }
            equal(scalar(c, "UPDATE smoke SET flag = NOT flag WHERE id = ? RETURNING flag", 2), true);
        }
    }

    static void insertAccount(Connection c, int id, String owner, long balance) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement("INSERT INTO accounts VALUES (?, ?, ?)")) {
            ps.setInt(1, id);
            ps.setString(2, owner);
            ps.setLong(3, balance);
            ps.executeUpdate();
        }
    }

    static void commit() throws Exception {
        try (Connection c = open()) {
            c.setAutoCommit(false);
            insertAccount(c, 1, "alice", 100);
            insertAccount(c, 2, "bob", 50);
            try (Connection other = open()) {
                equal(scalar(other, "SELECT count(*) FROM accounts"), 0L);
            }
            c.commit();
        }
        try (Connection other = open()) {
            equal(intOf(scalar(other, "SELECT sum(balance) FROM accounts")), 150);
        }
    }

    static void rollback() throws Exception {
        try (Connection c = open()) {
            c.setAutoCommit(false);
            c.setTransactionIsolation(Connection.TRANSACTION_REPEATABLE_READ);
            try (PreparedStatement ps = c.prepareStatement("UPDATE accounts SET balance = balance - ? WHERE id = ?")) {
                ps.setLong(1, 30);
                ps.setInt(2, 1);
                equal(ps.executeUpdate(), 1);
            }
            insertAccount(c, 3, "carol", 1);
            equal(scalar(c, "SELECT balance FROM accounts WHERE id = 1"), 70L);
            c.rollback();
            equal(scalar(c, "SELECT balance FROM accounts WHERE id = 1"), 100L);
            equal(scalar(c, "SELECT count(*) FROM accounts WHERE id = 3"), 0L);
            c.commit();
        }
    }

    static void savepoints() throws Exception {
        try (Connection c = open()) {
            c.setAutoCommit(false);
            insertAccount(c, 4, "dave", 4);
            Savepoint sp = c.setSavepoint();
            insertAccount(c, 5, "erin", 5);
            expectSqlState("23505", () -> insertAccount(c, 1, "again", 0));
            c.rollback(sp);
            c.commit();
            equal(scalar(c, "SELECT count(*) FROM accounts WHERE id >= 4"), 1L);
        }
    }

    static void duplicateKey() throws Exception {
        try (Connection c = open()) {
            expectSqlState("23505", () -> insertAccount(c, 1, "mallory", 0));
            equal(scalar(c, "SELECT owner FROM accounts WHERE id = ?", 1), "alice");
            c.setAutoCommit(false);
            expectSqlState("23505", () -> insertAccount(c, 2, "mallory", 0));
            expectSqlState("25P02", () -> scalar(c, "SELECT 1"));
            c.rollback();
            equal(intOf(scalar(c, "SELECT 1")), 1);
        }
    }

    static void duplicateKeyConstraint() throws Exception {
        try (Connection c = open()) {
            try {
                insertAccount(c, 1, "mallory", 0);
            } catch (org.postgresql.util.PSQLException e) {
                equal(e.getSQLState(), "23505");
                equal(e.getServerErrorMessage().getConstraint(), "accounts_pkey");
                equal(e.getServerErrorMessage().getTable(), "accounts");
                return;
            }
            throw new AssertionFailure("no error");
        }
    }

    static void syntaxError() throws Exception {
        try (Connection c = open(); Statement s = c.createStatement()) {
            expectSqlState("42601", () -> s.executeQuery("SELEC 1"));
            expectSqlState("42P01", () -> s.executeQuery("SELECT * FROM no_such_table"));
            expectSqlState("42601", () -> {
                PreparedStatement ps = c.prepareStatement("SELEC ?");
                ps.setInt(1, 1);
                ps.executeQuery();
            });
            equal(intOf(scalar(c, "SELECT 2")), 2);
        }
    }

    static void arraysAndIntervals() throws Exception {
        try (Connection c = open()) {
            try (Statement st = c.createStatement()) {
                st.execute("CREATE TABLE tagged (id integer PRIMARY KEY, nums int[], tags text[], at time,"
                        + " span interval)");
            }
            try (PreparedStatement ps = c.prepareStatement("INSERT INTO tagged VALUES (?, ?, ?, ?, ?::interval)")) {
                ps.setInt(1, 1);
                ps.setArray(2, c.createArrayOf("int4", new Integer[] {1, null, 3}));
                ps.setArray(3, c.createArrayOf("text", new String[] {"a", "b c"}));
                ps.setObject(4, java.time.LocalTime.of(8, 30, 15));
                ps.setObject(5, new org.postgresql.util.PGInterval("1 day 02:03:04"));
                equal(ps.executeUpdate(), 1);
            }
            try (PreparedStatement ps = c.prepareStatement("SELECT nums, tags, at, span FROM tagged WHERE id = ?")) {
                ps.setInt(1, 1);
                try (ResultSet rs = ps.executeQuery()) {
                    check(rs.next(), "row 1");
                    equal(Arrays.asList((Object[]) rs.getArray(1).getArray()), Arrays.asList(1, null, 3));
                    equal(Arrays.asList((Object[]) rs.getArray(2).getArray()), Arrays.asList("a", "b c"));
                    equal(rs.getObject(3, java.time.LocalTime.class), java.time.LocalTime.of(8, 30, 15));
                    equal(rs.getObject(4), new org.postgresql.util.PGInterval(0, 0, 1, 2, 3, 4));
                }
            }
        }
    }

    static void preparedReuse() throws Exception {
        try (Connection c = open()) {
            // pgjdbc switches to a named server-side statement after prepareThreshold (5) executions,
            // and then asks for binary results.
            try (PreparedStatement insert = c.prepareStatement("INSERT INTO accounts VALUES (?, ?, ?)");
                    PreparedStatement select = c.prepareStatement("SELECT owner, balance FROM accounts WHERE id = ?")) {
                for (int i = 10; i < 20; i++) {
                    insert.setInt(1, i);
                    insert.setString(2, "user" + i);
                    insert.setLong(3, i);
                    equal(insert.executeUpdate(), 1);
                }
                for (int round = 0; round < 2; round++) {
                    for (int i = 10; i < 20; i++) {
                        select.setInt(1, i);
                        try (ResultSet rs = select.executeQuery()) {
                            check(rs.next(), "row " + i);
                            equal(rs.getString(1), "user" + i);
                            equal(rs.getLong(2), (long) i);
                        }
                    }
                }
                check(select.unwrap(org.postgresql.PGStatement.class).isUseServerPrepare(), "server prepared");
            }
        }
    }

    static void metadataTables() throws Exception {
        try (Connection c = open();
                ResultSet rs = c.getMetaData().getTables(null, "public", "accounts", new String[] {"TABLE"})) {
            check(rs.next(), "accounts not listed");
            equal(rs.getString("TABLE_NAME"), "accounts");
        }
    }
}
