import {
  DataTypes,
  Model,
  type CreationOptional,
  type InferAttributes,
  type InferCreationAttributes,
  type Sequelize,
} from 'sequelize';

export type DayStatus = 'on_sale' | 'stopped';
export type OrderStatus = 'valid' | 'cancelled';

export class TicketDay extends Model<InferAttributes<TicketDay>, InferCreationAttributes<TicketDay>> {
  declare id: CreationOptional<number>;
  declare date: string;
  declare name: string;
  declare total: number;
  declare remaining: number;
  declare sold: CreationOptional<number>;
  declare version: CreationOptional<number>;
  declare status: CreationOptional<DayStatus>;
  declare createdAt: CreationOptional<Date>;
  declare updatedAt: CreationOptional<Date>;
}

export class User extends Model<InferAttributes<User>, InferCreationAttributes<User>> {
  declare id: number;
  declare name: string;
  declare createdAt: CreationOptional<Date>;
}

export class Order extends Model<InferAttributes<Order>, InferCreationAttributes<Order>> {
  declare id: CreationOptional<number>;
  declare orderNo: CreationOptional<string>;
  declare messageId: string | null;
  declare userId: number;
  declare date: string;
  declare ticketCode: string;
  declare status: CreationOptional<OrderStatus>;
  declare createdAt: CreationOptional<Date>;
  declare updatedAt: CreationOptional<Date>;
  declare cancelledAt: CreationOptional<Date | null>;
}

export function defineModels(sequelize: Sequelize): void {
  const common = { sequelize, underscored: true, timestamps: true } as const;
  TicketDay.init(
    {
      id: { type: DataTypes.INTEGER, primaryKey: true, autoIncrement: true },
      date: { type: DataTypes.DATEONLY, allowNull: false, unique: true },
      name: { type: DataTypes.STRING(100), allowNull: false },
      total: { type: DataTypes.INTEGER, allowNull: false },
      remaining: { type: DataTypes.INTEGER, allowNull: false },
      sold: { type: DataTypes.INTEGER, allowNull: false, defaultValue: 0 },
      version: { type: DataTypes.INTEGER, allowNull: false, defaultValue: 0 },
      status: { type: DataTypes.STRING(16), allowNull: false, defaultValue: 'on_sale' },
      createdAt: DataTypes.DATE,
      updatedAt: DataTypes.DATE,
    },
    { ...common, tableName: 'ticket_days' },
  );
  User.init(
    {
      id: { type: DataTypes.BIGINT, primaryKey: true },
      name: { type: DataTypes.STRING(100), allowNull: false },
      createdAt: DataTypes.DATE,
    },
    { ...common, tableName: 'users', updatedAt: false },
  );
  Order.init(
    {
      id: { type: DataTypes.BIGINT, primaryKey: true, autoIncrement: true },
      orderNo: { type: DataTypes.STRING(32), field: 'order_no' },
      messageId: { type: DataTypes.STRING(64), field: 'message_id', allowNull: true },
      userId: { type: DataTypes.BIGINT, field: 'user_id', allowNull: false },
      date: { type: DataTypes.DATEONLY, allowNull: false },
      ticketCode: { type: DataTypes.STRING(32), field: 'ticket_code', allowNull: false },
      status: { type: DataTypes.STRING(16), allowNull: false, defaultValue: 'valid' },
      createdAt: DataTypes.DATE,
      updatedAt: DataTypes.DATE,
      cancelledAt: { type: DataTypes.DATE, field: 'cancelled_at', allowNull: true },
    },
    { ...common, tableName: 'orders' },
  );
}
