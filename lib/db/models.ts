import {
  DataTypes,
  type CreationOptional,
  type InferAttributes,
  type InferCreationAttributes,
  type Model,
  type ModelStatic,
  type Sequelize,
} from 'sequelize';

type DayStatus = 'on_sale' | 'stopped';

/**
 * Models where a plain lookup or listing reads better than SQL: the user check, a user's orders, the
 * sale days. The schema itself is owned by the migrations (lib/db/migrations.ts), and the hot path
 * (the place_orders function, cancel, restock, the roll) stays raw SQL: these models never sync.
 */
export interface User extends Model<InferAttributes<User>, InferCreationAttributes<User>> {
  id: number;
  name: string;
  createdAt: CreationOptional<Date>;
}

export interface Order extends Model<InferAttributes<Order>, InferCreationAttributes<Order>> {
  id: CreationOptional<number>;
  orderNo: string;
  messageId: string | null;
  userId: number;
  date: string;
  ticketCode: string;
  status: 'valid' | 'cancelled';
  createdAt: CreationOptional<Date>;
  updatedAt: CreationOptional<Date>;
  cancelledAt: Date | null;
}

export interface TicketDay extends Model<InferAttributes<TicketDay>, InferCreationAttributes<TicketDay>> {
  id: CreationOptional<number>;
  date: string;
  name: string;
  total: number;
  remaining: number;
  sold: number;
  version: number;
  status: DayStatus;
  createdAt: CreationOptional<Date>;
  updatedAt: CreationOptional<Date>;
}

export interface Models {
  users: ModelStatic<User>;
  orders: ModelStatic<Order>;
  days: ModelStatic<TicketDay>;
}

const defined = new WeakMap<Sequelize, Models>();

/** The models of this pool: several brokers in one process keep their own, never a global one. */
export function modelsOf(sequelize: Sequelize): Models {
  let models = defined.get(sequelize);
  if (!models) {
    const options = { underscored: true, timestamps: true } as const;
    models = {
      users: sequelize.define<User>(
        'User',
        {
          id: { type: DataTypes.BIGINT, primaryKey: true },
          name: { type: DataTypes.STRING(100), allowNull: false },
          createdAt: DataTypes.DATE,
        },
        { ...options, updatedAt: false, tableName: 'users' },
      ),
      orders: sequelize.define<Order>(
        'Order',
        {
          id: { type: DataTypes.BIGINT, primaryKey: true, autoIncrement: true },
          orderNo: { type: DataTypes.STRING(32), allowNull: false },
          messageId: DataTypes.STRING(64),
          userId: { type: DataTypes.BIGINT, allowNull: false },
          date: { type: DataTypes.DATEONLY, allowNull: false },
          ticketCode: { type: DataTypes.STRING(32), allowNull: false },
          status: { type: DataTypes.STRING(16), allowNull: false },
          createdAt: DataTypes.DATE,
          updatedAt: DataTypes.DATE,
          cancelledAt: DataTypes.DATE,
        },
        { ...options, tableName: 'orders' },
      ),
      days: sequelize.define<TicketDay>(
        'TicketDay',
        {
          id: { type: DataTypes.INTEGER, primaryKey: true, autoIncrement: true },
          date: { type: DataTypes.DATEONLY, allowNull: false },
          name: { type: DataTypes.STRING(100), allowNull: false },
          total: { type: DataTypes.INTEGER, allowNull: false },
          remaining: { type: DataTypes.INTEGER, allowNull: false },
          sold: { type: DataTypes.INTEGER, allowNull: false },
          version: { type: DataTypes.INTEGER, allowNull: false },
          status: { type: DataTypes.STRING(16), allowNull: false },
          createdAt: DataTypes.DATE,
          updatedAt: DataTypes.DATE,
        },
        { ...options, tableName: 'ticket_days' },
      ),
    };
    defined.set(sequelize, models);
  }
  return models;
}
