import {
  DataTypes,
  type CreationOptional,
  type InferAttributes,
  type InferCreationAttributes,
  type Model,
  type ModelStatic,
  type Sequelize,
} from 'sequelize';

export type DayStatus = 'on_sale' | 'stopped';

/**
 * The hot path and the order queries are raw SQL and the place_orders function (lib/db/migrations.ts
 * owns the schema); a model serves where a plain lookup reads better, as the user check does.
 */
export interface User extends Model<InferAttributes<User>, InferCreationAttributes<User>> {
  id: number;
  name: string;
  createdAt: CreationOptional<Date>;
}

const userModels = new WeakMap<Sequelize, ModelStatic<User>>();

/** The users table as a model of this pool: several brokers in one process keep their own. */
export function usersOf(sequelize: Sequelize): ModelStatic<User> {
  let users = userModels.get(sequelize);
  if (!users) {
    users = sequelize.define<User>(
      'User',
      {
        id: { type: DataTypes.BIGINT, primaryKey: true },
        name: { type: DataTypes.STRING(100), allowNull: false },
        createdAt: DataTypes.DATE,
      },
      { underscored: true, timestamps: true, updatedAt: false, tableName: 'users' },
    );
    userModels.set(sequelize, users);
  }
  return users;
}
