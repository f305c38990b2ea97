// pgJDBC (the driver inside Metabase, DBeaver and Tableau) against `jcsql serve`, as those tools
// use it: connect, read the server's identity, browse schemas, tables and columns through
// DatabaseMetaData, run a prepared statement with a parameter and read its types, then try what
// jcsql refuses. Prints one `key<TAB>value` line per fact; the Rust test compares them exactly.
//
// Run: javac -d OUT JdbcSession.java && java -cp OUT:/usr/share/java/postgresql.jar JdbcSession URL PASSWORD USER_ID
import java.sql.*;
import java.util.*;

public class JdbcSession {
    static void out(String key, Object value) {
        System.out.println(key + "\t" + value);
    }

    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        props.setProperty("user", "jcsql");
        props.setProperty("password", args[1]);
        props.setProperty("ApplicationName", "jdbc-test");
        try (Connection conn = DriverManager.getConnection(args[0], props)) {
            DatabaseMetaData meta = conn.getMetaData();
            out("product", meta.getDatabaseProductName());
            out("product_version", meta.getDatabaseProductVersion());
            out("major", meta.getDatabaseMajorVersion());
            out("user", meta.getUserName());
            out("catalog", conn.getCatalog());

            List<String> schemas = new ArrayList<>();
            try (ResultSet rs = meta.getSchemas()) {
                while (rs.next()) schemas.add(rs.getString("TABLE_SCHEM"));
            }
            Collections.sort(schemas);
            out("schemas", String.join(",", schemas));

            List<String> tables = new ArrayList<>();
            try (ResultSet rs = meta.getTables(null, "jumpcloud", "%", new String[] {"TABLE"})) {
                while (rs.next()) tables.add(rs.getString("TABLE_NAME"));
            }
            Collections.sort(tables);
            out("tables", String.join(",", tables));

            List<String> views = new ArrayList<>();
            try (ResultSet rs = meta.getTables(null, "boards", "%", new String[] {"VIEW"})) {
                while (rs.next()) views.add(rs.getString("TABLE_NAME"));
            }
            out("board_views", views.size());

            List<String> columns = new ArrayList<>();
            try (ResultSet rs = meta.getColumns(null, "jumpcloud", "users", "%")) {
                while (rs.next()) {
                    if (columns.size() < 3) columns.add(rs.getString("COLUMN_NAME") + ":" + rs.getString("TYPE_NAME"));
                }
            }
            out("user_columns", String.join(",", columns));

            try (Statement st = conn.createStatement();
                 ResultSet rs = st.executeQuery("select current_setting('server_version_num')::int/100 as v")) {
                rs.next();
                out("grafana_version_probe", rs.getInt(1));
            }
            try (Statement st = conn.createStatement();
                 ResultSet rs = st.executeQuery("show transaction isolation level")) {
                rs.next();
                out("isolation", rs.getString(1));
            }
            out("isolation_level", conn.getTransactionIsolation() == Connection.TRANSACTION_READ_COMMITTED);

            String sql = "select username, email, suspended, created, manager_id from jumpcloud.users where id = ?";
            try (PreparedStatement ps = conn.prepareStatement(sql)) {
                ps.setString(1, args[2]);
                // Five runs: pgJDBC switches to a named server-side statement from the fifth on.
                for (int run = 1; run <= 5; run++) {
                    try (ResultSet rs = ps.executeQuery()) {
                        int rows = 0;
                        while (rs.next()) {
                            rows++;
                            if (run == 5) {
                                out("username", rs.getString("username"));
                                out("email", rs.getString("email"));
                                out("suspended", rs.getBoolean("suspended"));
                                Timestamp created = rs.getTimestamp("created");
                                out("created_epoch_ms", created.getTime());
                                String manager = rs.getString("manager_id");
                                out("manager_null", manager == null && rs.wasNull());
                            }
                        }
                        if (run == 5) out("rows", rows);
                    }
                }
            }

            for (String refused : new String[] {
                    "create table t (a int)",
                    "select suspend_user('" + args[2] + "')"}) {
                try (Statement st = conn.createStatement()) {
                    st.execute(refused);
                    out("refused", "NOT REFUSED: " + refused);
                } catch (SQLException e) {
                    out("refused", e.getSQLState());
                }
            }
            // The connection survives a refusal.
            try (Statement st = conn.createStatement();
                 ResultSet rs = st.executeQuery("select count(*) from jumpcloud.users")) {
                rs.next();
                out("users", rs.getLong(1));
            }
        }
    }
}
